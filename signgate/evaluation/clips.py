"""Liveness test clips built from a still photo (no real face video ships offline).

A head turn or a look up is simulated by a smooth local warp that carries the nose and
the middle of the face sideways or upwards relative to the eyes (a Gaussian displacement
field centred on the nose), plus a small global hand-held drift. It moves dlib's 5
landmarks the way a real turn moves them; it is not a photorealistic turn and says nothing
about how the detectors fare on real recordings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import cv2
import numpy as np

from signgate.detectors.faces import Face, find_faces

# Nose displacement at the peak of each move, in inter-ocular distances (x right, y down).
MOVE_SHIFT: dict[str, tuple[float, float]] = {
    "turn_left": (0.35, 0.0),
    "turn_right": (-0.35, 0.0),
    "look_up": (0.0, -0.3),
}


def _anchor(rgb: np.ndarray) -> tuple[float, float, float]:
    """(nose x, nose y, inter-ocular distance) of the largest face in `rgb`."""
    faces: list[Face] = find_faces(rgb)
    if not faces:
        raise ValueError("no face in the still")
    (ax, ay), (bx, by), (cx, cy), (dx, dy), (nx, ny) = faces[0].landmarks
    iod = float(np.hypot((ax + bx - cx - dx) / 2.0, (ay + by - cy - dy) / 2.0))
    return float(nx), float(ny), iod


def warp(
    rgb: np.ndarray,
    anchor: tuple[float, float, float],
    shift: tuple[float, float],
    drift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """`rgb` with the region around the nose carried by `shift` (inter-ocular units)."""
    nx, ny, iod = anchor
    h, w = rgb.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = np.exp(-(((xs - nx) ** 2 + (ys - ny) ** 2) / (2 * (0.7 * iod) ** 2)))
    map_x = xs - shift[0] * iod * bump - drift[0]
    map_y = ys - shift[1] * iod * bump - drift[1]
    return cv2.remap(
        rgb,
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )


def clip_frames(
    rgb: np.ndarray, moves: Sequence[str], hold: int = 6, seed: int = 0
) -> list[np.ndarray]:
    """Neutral, then each move (in, hold, out), neutral again between moves."""
    rng = np.random.default_rng(seed)
    anchor = _anchor(rgb)
    shifts: list[tuple[float, float]] = [(0.0, 0.0)] * hold
    for move in moves:
        peak = MOVE_SHIFT[move]
        ramp = [(peak[0] * t, peak[1] * t) for t in (0.33, 0.66)]
        shifts += ramp + [peak] * hold + ramp[::-1] + [(0.0, 0.0)] * (hold // 2)
    return [warp(rgb, anchor, s, tuple(rng.normal(0.0, 1.0, 2))) for s in shifts]


def encode_clip(frames: Sequence[np.ndarray], fps: float = 15.0) -> bytes:
    """MPEG-4 in an MP4 container: what capture SDKs send and the gateway accepts, and what
    the FFmpeg inside opencv-python-headless writes and reads without an external codec."""
    h, w = frames[0].shape[:2]
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
