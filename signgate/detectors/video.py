"""Decode a liveness video into a bounded list of RGB frames, each with its faces.

OpenCV reads only from a path, so the bytes go to a private temporary file that is removed
at once. At most MAX_FRAMES frames are kept, evenly spread over the clip (a 60 s upload
costs the same as a 3 s one), each downscaled to at most FRAME_MAX_SIDE: the pose and the
temporal checks need the face's layout, not its pores. Faces are found at dlib's native
scale first (a selfie video's face is large; 4x cheaper than upsampling), upsampled once
only for a frame where none was found. The liveness and the deepfake checks both read the
clip: the last few results are kept per process, keyed by the clip's SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from signgate.detectors.faces import Face, detect_faces

MAX_FRAMES = 32
CACHE_CLIPS = 2
FRAME_MAX_SIDE = 480
MAX_DECODED_FRAMES = 3_600  # a minute at 60 fps: longer clips are read only this far


class VideoUndecodable(ValueError):
    """The bytes are not a video OpenCV can read (or hold no frame)."""


@dataclass(frozen=True)
class VideoFrame:
    index: int  # frame number in the clip
    rgb: np.ndarray
    faces: tuple[Face, ...]  # largest first


def _spread(count: int, keep: int) -> set[int]:
    if count <= keep:
        return set(range(count))
    return {round(i * (count - 1) / (keep - 1)) for i in range(keep)}


def read_frames(data: bytes, max_frames: int = MAX_FRAMES) -> list[np.ndarray]:
    """Up to `max_frames` RGB frames spread evenly over the clip. Two passes: the first
    only counts frames (`grab`, no pixel conversion), the second converts the chosen
    ones, so memory stays at `max_frames` small frames whatever the clip's length."""
    fd, path = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        count = _count_frames(path)
        keep = _spread(count, max_frames)
        frames: list[np.ndarray] = []
        capture = cv2.VideoCapture(path)
        try:
            for index in range(count):
                if not capture.grab():
                    break
                if index in keep:
                    ok, bgr = capture.retrieve()
                    if ok:
                        frames.append(_small(bgr))
        finally:
            capture.release()
    finally:
        os.unlink(path)
    if not frames:
        raise VideoUndecodable("the video holds no frame")
    return frames


def _count_frames(path: str) -> int:
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise VideoUndecodable("not a video OpenCV can read")
        count = 0
        while count < MAX_DECODED_FRAMES and capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def _small(bgr: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    scale = FRAME_MAX_SIDE / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


_cache: OrderedDict[str, tuple[VideoFrame, ...]] = OrderedDict()
_cache_lock = threading.Lock()


def frames_with_faces(data: bytes, max_frames: int = MAX_FRAMES) -> tuple[VideoFrame, ...]:
    """The sampled frames and the faces found in each (none is a valid answer)."""
    key = f"{hashlib.sha256(data).hexdigest()}:{max_frames}"
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    frames = tuple(
        VideoFrame(
            index=i,
            rgb=rgb,
            faces=tuple(detect_faces(rgb, upsample=0) or detect_faces(rgb, upsample=1)),
        )
        for i, rgb in enumerate(read_frames(data, max_frames))
    )
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_CLIPS:
            _cache.popitem(last=False)
    return frames
