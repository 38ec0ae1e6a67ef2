"""Find faces in an image: decode, detect, landmark, align. Shared by every face detector.

dlib's HOG frontal detector (no model file, a few tens of ms) finds faces; the 5-point
shape predictor from `face_recognition_models` places eyes and nose for alignment. We use
the 5-point model only: the 68-point model's licence forbids commercial use.

`find_faces` is the detection every face detector uses: HOG on a copy no larger than
DETECT_MAX_SIDE, boxes mapped back and landmarks placed again at full resolution.
`image_faces` decodes and detects once per image per process: face match, liveness and
forensics asking about the same bytes share one result (a small thread-safe LRU keyed by
the SHA-256 of the bytes, bounded in entries and in decoded bytes).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cv2
import dlib
import face_recognition_models
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from signgate.errors import BadInput

# dlib's own threshold is a margin of 0, which admits weak false positives: the mission
# patch on skimage's astronaut scores 0.12 at upsample=1, while real frontal faces in our
# test images score above 1. Below this margin a detection is not reported. A missed weak
# face becomes a "no face" outcome, which fails safe (review), unlike a phantom second face.
MIN_SCORE = 0.3

# Decompression-bomb guard: a selfie or an ID scan never needs more than this.
MAX_PIXELS = 40_000_000

# Detection runs on a copy whose longest side is at most this: on a 1920x1080 image, HOG
# at upsample 1 on the 640 px copy costs ~60 ms against ~540 ms on the full frame. The
# price: the smallest face found in a larger image is ~40 px of the copy (~120 px of a
# 1920 px frame), ~20 px of the copy (~60 px) on the upsample-2 retry, where the full
# frame at upsample 1 found ~40 px. Images at most this size are detected as they are.
DETECT_MAX_SIDE = 640

# Shared decode + detection cache: entries, and decoded pixel bytes across entries (a
# 1920x1080 RGB image is 6 MB; the newest entry is always kept, even if larger).
CACHE_ENTRIES = 32
CACHE_MAX_BYTES = 256 * 1024 * 1024


class ImageUndecodable(BadInput):
    """The bytes are not an image we can read: do not retry."""

    reason = "image_undecodable"


@dataclass(frozen=True)
class Face:
    """One detected face. `box` is (x0, y0, x1, y1) in pixels, x1/y1 exclusive.

    `score` is the HOG detector's margin (higher = more face-like; ~0 is borderline).
    `landmarks` are dlib's 5 points: right-eye corners (2), left-eye corners (2), nose.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: list[tuple[int, int]]

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(0, x1 - x0) * max(0, y1 - y0)


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to an RGB uint8 array (H, W, 3), EXIF orientation applied."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageUndecodable(f"image is {image.width}x{image.height}, too large")
            upright = ImageOps.exif_transpose(image)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUndecodable(f"cannot decode image: {exc}") from exc
    return np.ascontiguousarray(rgb)


# --------------------------------------------------------------------------- models

_lock = threading.Lock()
_models: dict[str, Any] = {}


def _model(name: str) -> Any:
    """Load a dlib model once per process; the lock makes first use thread-safe."""
    model = _models.get(name)
    if model is not None:
        return model
    with _lock:
        if name not in _models:
            if name == "detector":
                _models[name] = dlib.get_frontal_face_detector()
            elif name == "shape5":
                path = face_recognition_models.pose_predictor_five_point_model_location()
                _models[name] = dlib.shape_predictor(path)
            elif name == "resnet":
                path = face_recognition_models.face_recognition_model_location()
                _models[name] = dlib.face_recognition_model_v1(path)
            else:
                raise KeyError(name)
        return _models[name]


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _rect(face: Face) -> dlib.rectangle:
    x0, y0, x1, y1 = face.box
    return dlib.rectangle(x0, y0, x1 - 1, y1 - 1)


def shape_of(face: Face) -> dlib.full_object_detection:
    """The face's box and 5 landmarks as dlib's shape object (for chips and embeddings)."""
    points = dlib.points([dlib.point(x, y) for x, y in face.landmarks])
    return dlib.full_object_detection(_rect(face), points)


# --------------------------------------------------------------------------- public API


def detect_faces(rgb: np.ndarray, upsample: int = 1, min_score: float = MIN_SCORE) -> list[Face]:
    """Frontal faces in `rgb` scoring at least `min_score`, largest first.

    `upsample` doubles the image that many times before detection (finds faces down to
    ~40 px at 1, ~20 px at 2; each step ~4x slower)."""
    rgb = _check_rgb(rgb)
    # dlib's detector and predictor are not documented as re-entrant; the lock costs little
    # next to the detection itself and keeps concurrent activity threads safe.
    detector = _model("detector")
    predictor = _model("shape5")
    height, width = rgb.shape[:2]
    with _lock:
        rects, scores, _ = detector.run(rgb, upsample, min_score)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            shape = predictor(rgb, rect)
            box = (
                max(0, rect.left()),
                max(0, rect.top()),
                min(width, rect.right() + 1),
                min(height, rect.bottom() + 1),
            )
            points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
            faces.append(Face(box=box, score=float(score), landmarks=points))
    return sorted(faces, key=lambda f: (-f.area, -f.score))


def face_recognizer() -> Any:
    """dlib's ResNet face recognition model (128-D embeddings), loaded once per process."""
    return _model("resnet")


def face_chip(rgb: np.ndarray, face: Face, size: int = 150) -> np.ndarray:
    """dlib's aligned face chip (eyes level, fixed scale), RGB uint8 (size, size, 3)."""
    chip = dlib.get_face_chip(_check_rgb(rgb), shape_of(face), size=size)
    return np.asarray(chip, dtype=np.uint8)


def find_faces(rgb: np.ndarray) -> list[Face]:
    """The detection the face detectors share: frontal faces, largest first, in `rgb`'s
    own pixel coordinates.

    Upsample 1, then upsample 2 if nothing is found (faces down to ~20 px). An image
    larger than DETECT_MAX_SIDE is detected on a downscaled copy (INTER_AREA); the boxes are
    mapped back and the 5 landmarks placed again on the full-resolution image, so the
    alignment and the embedding see full-resolution pixels.
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    scale = DETECT_MAX_SIDE / max(height, width)
    if scale >= 1.0:
        return detect_faces(rgb, upsample=1) or detect_faces(rgb, upsample=2)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    found = detect_faces(small, upsample=1) or detect_faces(small, upsample=2)
    if not found:
        return []
    sx, sy = width / size[0], height / size[1]
    predictor = _model("shape5")
    faces = []
    with _lock:
        for face in found:
            x0, y0, x1, y1 = face.box
            box = (
                max(0, round(x0 * sx)),
                max(0, round(y0 * sy)),
                min(width, round(x1 * sx)),
                min(height, round(y1 * sy)),
            )
            rect = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
            shape = predictor(rgb, rect)
            points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
            faces.append(Face(box=box, score=face.score, landmarks=points))
    return sorted(faces, key=lambda f: (-f.area, -f.score))


@dataclass(frozen=True)
class ImageFaces:
    """One image decoded (RGB uint8, read-only: it is shared) and its `find_faces`."""

    rgb: np.ndarray
    faces: tuple[Face, ...]


_cache: OrderedDict[str, ImageFaces] = OrderedDict()
_cache_lock = threading.Lock()
_inflight: dict[str, threading.Lock] = {}


def image_faces(data: bytes) -> ImageFaces:
    """`decode_image` then `find_faces`, once per image per process (LRU by SHA-256).

    Concurrent callers with the same bytes wait for the first one instead of repeating the
    work. Undecodable bytes raise ImageUndecodable and are not cached.
    """
    key = hashlib.sha256(data).hexdigest()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        gate = _inflight.setdefault(key, threading.Lock())
    with gate:
        try:
            with _cache_lock:
                hit = _cache.get(key)
                if hit is not None:  # computed while we waited
                    _cache.move_to_end(key)
                    return hit
            rgb = decode_image(data)
            faces = tuple(find_faces(rgb))
            rgb.setflags(write=False)
            entry = ImageFaces(rgb, faces)
            with _cache_lock:
                _cache[key] = entry
                _evict()
            return entry
        finally:
            with _cache_lock:
                if _inflight.get(key) is gate:
                    del _inflight[key]


def _evict() -> None:
    """Drop least recently used entries beyond the bounds (caller holds _cache_lock)."""
    total = sum(entry.rgb.nbytes for entry in _cache.values())
    while len(_cache) > 1 and (len(_cache) > CACHE_ENTRIES or total > CACHE_MAX_BYTES):
        _, dropped = _cache.popitem(last=False)
        total -= dropped.rgb.nbytes


def clear_image_cache() -> None:
    """Forget every cached image (benchmarks measuring a cold start; tests)."""
    with _cache_lock:
        _cache.clear()
