"""Key frames of a liveness video for the reviewer, extracted with OpenCV, bounded.

A hostile or broken upload must not hold the gateway: at most `MAX_FRAMES` frames are
returned, at most `MAX_READS` are decoded, and each is scaled down to `MAX_SIDE_PX` and
re-encoded as JPEG, so the browser only ever sees a few small stills, never the video.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from threading import Lock

import cv2
import numpy as np

MAX_FRAMES = 4
MAX_READS = 600
MAX_SIDE_PX = 360
_CACHE_ENTRIES = 32


def key_frames(path: Path, count: int = MAX_FRAMES) -> list[bytes]:
    """Up to `count` evenly spaced frames as JPEG bytes; [] if nothing decodes.

    Frames are skipped with `grab()` (no decoding) and only the chosen ones are decoded,
    so memory holds `count` small stills whatever the video's length.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return []
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        span = min(declared, MAX_READS) if declared > 0 else MAX_READS
        wanted = {round(i * (span - 1) / max(1, count - 1)) for i in range(count)}
        if declared <= 0:
            wanted = set(range(count))  # length unknown: the first frames
        stills: list[bytes] = []
        for index in range(span):
            if not capture.grab():
                break
            if index not in wanted:
                continue
            ok, frame = capture.retrieve()
            if ok and frame is not None:
                encoded, buf = cv2.imencode(".jpg", _shrink(frame), [cv2.IMWRITE_JPEG_QUALITY, 85])
                if encoded:
                    stills.append(buf.tobytes())
            if len(stills) >= count:
                break
        return stills
    finally:
        capture.release()


def _shrink(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = MAX_SIDE_PX / max(height, width)
    if scale >= 1:
        return frame
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class FrameCache:
    """Frames per object key (objects are write-once, so a key's frames never change).
    Bounded: the least recently used video's frames are dropped first.

    Extracting frames decrypts a whole video, which is what the cache saves; whether the
    video may still be shown can change (erasure), so a hit is served only while the
    caller's cheap `usable()` holds, and dropped when it does not.
    """

    def __init__(self, entries: int = _CACHE_ENTRIES) -> None:
        self._entries = entries
        self._frames: OrderedDict[str, list[bytes]] = OrderedDict()
        self._lock = Lock()

    def get(
        self,
        object_key: str,
        extract: Callable[[], list[bytes]],
        usable: Callable[[], bool],
    ) -> list[bytes]:
        """The cached frames if `usable()`, else `extract()`'s (which may refuse), kept."""
        with self._lock:
            cached = self._frames.get(object_key)
            if cached is not None:
                self._frames.move_to_end(object_key)
        if cached is not None:
            if usable():
                return cached
            with self._lock:
                self._frames.pop(object_key, None)
        frames = extract()
        with self._lock:
            self._frames[object_key] = frames
            while len(self._frames) > self._entries:
                self._frames.popitem(last=False)
        return frames
