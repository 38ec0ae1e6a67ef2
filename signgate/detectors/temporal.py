"""Temporal consistency of the face region against the background, for video deepfakes.

A face swapped or generated frame by frame is rendered anew in every frame, while the
camera's background and sensor noise carry over. So the *texture* of the face region
(its high-pass noise level) jumps from frame to frame much more than the background's;
in a real clip both drift together with light and focus. Per sampled frame with one face:

- face level = std of the Laplacian-of-Gaussian residual inside the face box,
- background level = the same outside a margin around the box,

and the jitter of each series is the median absolute change of its log2 from one frame to
the next. The score is face jitter minus background jitter (log2 units): how much less
stable the face is than its surroundings. Head motion moves the box but keeps the level:
the level is a per-region statistic, not a pixel difference.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from signgate.detectors.video import VideoFrame

MIN_FRAMES = 4
BOX_MARGIN = 0.25  # of the box side, excluded from the background around the face
# Calibrated on clips built from the astronaut still (see tests/unit/test_active_liveness):
# warped and shifted frames stay below 0.05; a face re-rendered per frame (different blur
# and noise each frame) is above 0.4.
JITTER_THRESHOLD = 0.2


@dataclass(frozen=True)
class TemporalReport:
    frames: int
    face_jitter: float
    background_jitter: float

    @property
    def excess(self) -> float:
        return self.face_jitter - self.background_jitter


def _levels(frame: VideoFrame) -> tuple[float, float] | None:
    if len(frame.faces) != 1:
        return None
    grey = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    residual = grey - cv2.GaussianBlur(grey, (0, 0), 1.5)
    h, w = grey.shape
    x0, y0, x1, y1 = frame.faces[0].box
    mx, my = int((x1 - x0) * BOX_MARGIN), int((y1 - y0) * BOX_MARGIN)
    background = np.ones((h, w), bool)
    background[max(0, y0 - my) : y1 + my, max(0, x0 - mx) : x1 + mx] = False
    face = residual[y0:y1, x0:x1]
    if face.size < 64 or background.sum() < 64:
        return None
    return float(face.std()) + 1e-3, float(residual[background].std()) + 1e-3


def _jitter(levels: Sequence[float]) -> float:
    logs = np.log2(np.asarray(levels))
    return float(statistics.median(np.abs(np.diff(logs))))


def temporal_consistency(frames: Sequence[VideoFrame]) -> TemporalReport | None:
    """None when fewer than MIN_FRAMES frames show exactly one face."""
    levels = [lv for f in frames if (lv := _levels(f)) is not None]
    if len(levels) < MIN_FRAMES:
        return None
    return TemporalReport(
        frames=len(levels),
        face_jitter=_jitter([f for f, _ in levels]),
        background_jitter=_jitter([b for _, b in levels]),
    )
