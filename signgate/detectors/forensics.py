"""Image forensics for the deepfake check on still images (selfie, and ID front if present).

Four signals, each a score in 0..1 (1 = the trace is certainly there):

- `double_compression`: the JPEG's DCT coefficients, re-quantised with the file's own
  luminance table, are histogrammed per low-frequency position. One compression gives a
  smooth, Laplacian-shaped histogram; a first compression with a coarser step leaves
  periodic empty bins (Lukáš & Fridrich / Popescu & Farid). We measure how far the
  histogram departs from its own 3-bin moving average. We chose this over the blocking-grid
  misalignment method because the two saves in a typical edit share the 8x8 grid.
- `grid` (splice): the face region (and, as a second hypothesis, the centre of the frame)
  carries a JPEG blocking grid at an offset the rest of the frame does not have: a face
  pasted from another JPEG keeps its own grid (see `jpeg_grid`).
- `region_compression` (splice): the same region's DCT histograms show an earlier coarser
  compression that the rest of the frame does not (a pasted JPEG whose grid happens to
  align with the host's).
- `upsampling`: column- and row-averaged high-pass residual, then its spectrum: a
  generator's transposed-convolution checkerboard puts a phase-coherent peak at N/2 (and
  N/4 for 4x); the JPEG 8x8 grid puts peaks at every N/8, so the score discounts the peaks
  seen at N/8 and 3N/8 (present for JPEG, absent for a checkerboard).

Every score is read from numpy/OpenCV only; no learned model.

Version 2 also scored noise-level and error-level (ELA) contrast between the face and the
rest. Those never separated a splice from ordinary texture (bona fide photos varied more
from region to region than a pasted patch did), raised the one false alarm of the
evaluation set, and were removed in version 3 for the grid signals above.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from signgate.detectors.base import PROVIDER, Evidence, model_version
from signgate.detectors.jpeg_grid import grid_heat_map, grid_misalignment, phase_profiles
from signgate.models import ArtifactKind, CheckKind, CheckResult, CheckStatus

if TYPE_CHECKING:
    from signgate.detectors.faces import Face

MODEL_VERSION = model_version("image-forensics", "3", ("numpy", "opencv-python-headless", "Pillow"))

# Thresholds, calibrated on skimage's astronaut (JPEG q 70, 85, 95 at 512 px, q 90 at
# 1024 px), chelsea (q 90) and coffee (q 85) as bona fide against signgate.attacks' outputs
# (seeds 0..2): each sits near the geometric mean of the highest bona fide value and the
# lowest attack value. The measured ranges are beside each constant.
DOUBLE_JPEG_RAW_THRESHOLD = 0.30  # histogram roughness; bona fide <= 0.08, q60->q90 >= 1.03
# Grid misalignment (log2, both axes summed, see jpeg_grid): on the evaluation set bona
# fide reach 0.19, face_splice with a misaligned grid 0.31..1.57. Region double
# compression (roughness inside minus outside): bona fide <= 0.12, aligned splices 0.29+.
SPLICE_GRID_RAW_THRESHOLD = 0.27
SPLICE_REGION_DQ_RAW_THRESHOLD = 0.2
UPSAMPLE_RAW_THRESHOLD = 8.0  # N/2 (N/4) peak over JPEG-grid peaks; bona <= 1.9, attack >= 100
FLAG_SCORE = 0.5  # a signal at its threshold maps to this score

GRID = 16  # heatmap cells per side
FACE_MARGIN = 0.5  # the splice region: the face box grown by this fraction on each side
MIN_REGION_SIDE = 128  # ... and to at least this many pixels a side (four grid tiles)


@dataclass
class ForensicsReport:
    """Per-signal scores (0..1), raw measurements, a coarse heatmap (GRID x GRID, 0..1)."""

    scores: dict[str, float]
    raw: dict[str, float]
    heatmap: np.ndarray
    face_box: tuple[int, int, int, int]
    face_found: bool
    jpeg_quality: int | None = None
    notes: list[str] = field(default_factory=list)

    def hottest_cell(self) -> tuple[int, int]:
        """(row, col) of the hottest heatmap cell."""
        row, col = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return int(row), int(col)

    def heatmap_png(self, size: int = 256) -> bytes:
        """The heatmap as a false-colour PNG (red = suspicious) for the reviewer console."""
        grey = np.clip(self.heatmap * 255.0, 0, 255).astype(np.uint8)
        big = cv2.resize(grey, (size, size), interpolation=cv2.INTER_NEAREST)
        colour = cv2.applyColorMap(big, cv2.COLORMAP_JET)[..., ::-1]
        out = io.BytesIO()
        Image.fromarray(colour).save(out, "PNG")
        return out.getvalue()


# --------------------------------------------------------------------------- helpers


def squash(raw: float, threshold: float) -> float:
    """Map a raw measurement to 0..1 with `threshold` -> FLAG_SCORE (logistic in raw/threshold)."""
    if raw <= 0:
        return 0.0
    return float(1.0 / (1.0 + np.exp(-4.0 * (raw / threshold - 1.0))))


def face_region(
    rgb: np.ndarray, faces: Sequence[Face] | None = None
) -> tuple[tuple[int, int, int, int], bool]:
    """The largest face's box, or the centre region (middle half) if none is found.

    `faces` is a detection already made on this image (`faces.image_faces`, shared with
    the other detectors); None detects here. Face detection is best effort: a missing
    detector or no face never fails a check.
    """
    h, w = rgb.shape[:2]
    if faces is None:
        try:
            from signgate.detectors.faces import find_faces

            faces = find_faces(rgb)
        except Exception:  # noqa: BLE001 - a detector fault degrades to the centre region
            faces = []
    if faces:
        return faces[0].box, True
    return (w // 4, h // 4, w - w // 4, h - h // 4), False


def _downscale(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return img, 1.0
    return cv2.resize(
        img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
    ), scale


def splice_regions(
    shape: tuple[int, ...], face_box: tuple[int, int, int, int] | None
) -> list[tuple[int, int, int, int]]:
    """Where a pasted face is looked for: the face box grown by FACE_MARGIN (a face swap
    pastes the face and a margin), and the centre of the frame (the middle half), which
    also covers a paste the face detector does not see as a face. Each at least
    MIN_REGION_SIDE a side, clipped to the frame."""
    h, w = shape[:2]
    boxes = [(w // 4, h // 4, w - w // 4, h - h // 4)]
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        mx, my = int((x1 - x0) * FACE_MARGIN), int((y1 - y0) * FACE_MARGIN)
        boxes.insert(0, (x0 - mx, y0 - my, x1 + mx, y1 + my))
    regions = []
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        half_w = max(x1 - x0, MIN_REGION_SIDE) // 2
        half_h = max(y1 - y0, MIN_REGION_SIDE) // 2
        regions.append(
            (max(0, cx - half_w), max(0, cy - half_h), min(w, cx + half_w), min(h, cy + half_h))
        )
    return regions


def _cells(values: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Resample a coarse map (e.g. per 32 px tile) to the GRID x GRID heatmap."""
    if values.size == 0:
        return np.zeros((grid, grid))
    return np.asarray(
        cv2.resize(values.astype(np.float32), (grid, grid), interpolation=cv2.INTER_LINEAR),
        dtype=np.float64,
    )


# --------------------------------------------------------------------------- JPEG signals


# The JPEG standard's (Annex K) luminance table, natural order; libjpeg scales it by quality.
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


def estimate_quality(luma_table: np.ndarray) -> int:
    """The libjpeg quality (1..100) whose scaled standard table best matches `luma_table`."""
    best, best_err = 50, np.inf
    for q in range(1, 101):
        scale = 5000 / q if q < 50 else 200 - 2 * q
        table = np.clip(np.floor((_STD_LUMA * scale + 50) / 100), 1, 255)
        err = float(np.abs(table - luma_table).sum())
        if err < best_err:
            best, best_err = q, err
    return best


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


_DCT = _dct_matrix()
_DC_POSITIONS = [(0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1)]


@dataclass(frozen=True)
class JpegCoefficients:
    """The 3x3 lowest DCT coefficients of every 8x8 luminance block, the file's luminance
    quantisation table and the quality it matches."""

    coefs: np.ndarray  # (blocks_y, blocks_x, 3, 3)
    table: np.ndarray  # (8, 8)
    quality: int
    oriented: bool  # an EXIF orientation other than 1: blocks are not in display coordinates


def jpeg_coefficients(jpeg: bytes) -> JpegCoefficients | None:
    """None for a non-JPEG or a JPEG without a luminance table."""
    with Image.open(io.BytesIO(jpeg)) as image:
        tables = getattr(image, "quantization", None)
        if image.format != "JPEG" or not tables or 0 not in tables:
            return None
        oriented = image.getexif().get(0x0112, 1) != 1
        table = np.asarray(tables[0], dtype=np.float64).reshape(8, 8)
        image.draft("YCbCr", image.size)  # the decoder's own Y plane, no colour round trip
        if image.mode in ("YCbCr", "L"):  # read the Y plane alone: no 3-channel copy
            luma = np.asarray(image.getchannel(0), dtype=np.float64)
        else:  # e.g. CMYK: Y through a colour conversion
            luma = np.asarray(image.convert("YCbCr"), dtype=np.float64)[..., 0]
    h, w = (luma.shape[0] // 8) * 8, (luma.shape[1] // 8) * 8
    blocks = (luma[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    low = _DCT[:3]  # only the 3x3 lowest frequencies are histogrammed
    return JpegCoefficients(low @ blocks @ low.T, table, estimate_quality(table.ravel()), oriented)


def histogram_roughness(jpeg: JpegCoefficients, blocks: np.ndarray | None = None) -> float:
    """Roughness of the re-quantised low-frequency DCT histograms (module doc), over all
    blocks or over the `blocks` mask (blocks_y, blocks_x); 0.0 if too few coefficients."""
    min_count = 200 if blocks is None else 100
    rough = []
    for u, v in _DC_POSITIONS:
        values = jpeg.coefs[:, :, u, v] if blocks is None else jpeg.coefs[:, :, u, v][blocks]
        q = np.rint(values / jpeg.table[u, v]).astype(int).ravel()
        hist = np.bincount(np.abs(q[(q != 0) & (np.abs(q) <= 20)]), minlength=21)[1:21].astype(
            float
        )
        if hist.sum() < min_count:
            continue
        smooth = np.convolve(np.pad(hist, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        rough.append(float(np.abs(hist - smooth)[1:].sum() / hist.sum()))
    return float(np.median(rough)) if rough else 0.0


def region_double_compression(jpeg: JpegCoefficients, box: tuple[int, int, int, int]) -> float:
    """How much rougher the histograms are inside `box` than outside it (a region with an
    earlier coarser compression the rest of the frame lacks); 0.0 if either side is thin,
    or if the file is stored rotated (`box` is in display coordinates, the blocks are not)."""
    if jpeg.oriented:
        return 0.0
    bh, bw = jpeg.coefs.shape[:2]
    x0, y0, x1, y1 = box
    inside = np.zeros((bh, bw), dtype=bool)
    inside[y0 // 8 : -(-y1 // 8), x0 // 8 : -(-x1 // 8)] = True
    if not inside.any() or inside.all():
        return 0.0
    return histogram_roughness(jpeg, inside) - histogram_roughness(jpeg, ~inside)


# --------------------------------------------------------------------------- pixel signals


def upsampling_peak(grey: np.ndarray) -> float:
    """Strength of a period-2 / period-4 grid over the JPEG-grid peaks (see module doc)."""
    residual = grey - cv2.blur(grey, (3, 3), borderType=cv2.BORDER_REFLECT)
    best = 0.0
    for profile in (residual.mean(axis=0), residual.mean(axis=1)):
        n = (len(profile) // 8) * 8
        if n < 64:
            continue
        spectrum = np.abs(np.fft.rfft(profile[:n] - profile[:n].mean()))
        floor = float(np.median(spectrum[1:])) + 1e-9
        jpeg_grid = max(spectrum[n // 8], spectrum[3 * n // 8]) / floor
        for k in (n // 2, n // 4):
            best = max(best, float(spectrum[k] / floor / max(1.0, jpeg_grid)))
    return best


# --------------------------------------------------------------------------- analysis


def analyse_image(
    rgb: np.ndarray, jpeg: bytes | None, faces: Sequence[Face] | None = None
) -> ForensicsReport:
    """All forensic signals for one image. `jpeg` (the original bytes) enables the
    quantisation-table and double-compression signals; without it they score 0. `faces`:
    a detection already made on `rgb` (see `face_region`)."""
    box, found = face_region(rgb, faces)
    raw: dict[str, float] = {}
    notes: list[str] = []

    full_grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    regions = splice_regions(rgb.shape, box if found else None)
    coefficients: JpegCoefficients | None = None
    if jpeg is not None:
        try:
            coefficients = jpeg_coefficients(jpeg)
        except (OSError, ValueError) as exc:
            notes.append(f"JPEG tables unreadable: {exc}")
    quality = coefficients.quality if coefficients is not None else None
    raw["double_compression"] = (
        histogram_roughness(coefficients) if coefficients is not None else 0.0
    )
    raw["region_compression"] = (
        max((region_double_compression(coefficients, r) for r in regions), default=0.0)
        if coefficients is not None
        else 0.0
    )

    # Full resolution: downscaling would average the period-2 grid (and the 8x8 JPEG
    # grid) away.
    raw["upsampling"] = upsampling_peak(full_grey)
    along_x, along_y = phase_profiles(full_grey)
    grids = [g for r in regions if (g := grid_misalignment(along_x, along_y, r)) is not None]
    raw["grid"] = max((g.region_excess for g in grids), default=0.0)
    grid_heat = _cells(grid_heat_map(along_x, along_y))
    scores = {
        "double_compression": squash(raw["double_compression"], DOUBLE_JPEG_RAW_THRESHOLD),
        "upsampling": squash(raw["upsampling"], UPSAMPLE_RAW_THRESHOLD),
        "grid": squash(raw["grid"], SPLICE_GRID_RAW_THRESHOLD),
        "region_compression": squash(raw["region_compression"], SPLICE_REGION_DQ_RAW_THRESHOLD),
    }
    # The heatmap shows where a foreign grid is, wherever it is; scaled so that the
    # threshold is half-hot and a bona fide image stays mostly cold.
    heat = grid_heat / SPLICE_GRID_RAW_THRESHOLD
    heatmap = np.clip(heat / max(2.0, float(heat.max())), 0.0, 1.0)
    return ForensicsReport(scores, raw, heatmap, box, found, quality, notes)


def _region_name(report: ForensicsReport) -> str:
    row, col = report.hottest_cell()
    vertical = ("top", "middle", "bottom")[min(2, row * 3 // GRID)]
    horizontal = ("left", "centre", "right")[min(2, col * 3 // GRID)]
    return f"{vertical}-{horizontal}"


def explain(report: ForensicsReport, label: str) -> tuple[list[str], list[str]]:
    """(attack_hints, explanations) for one image's report."""
    hints: list[str] = []
    lines: list[str] = []
    s, r = report.scores, report.raw
    where = "face" if report.face_found else "centre region (no face found)"
    if s["grid"] >= FLAG_SCORE:
        hints.append("splice")
        lines.append(
            f"{label}: a JPEG blocking grid at an offset the rest of the image lacks, "
            f"in the {where} or the centre (excess {r['grid']:.2f} log2): a region pasted "
            f"from another JPEG; hottest region {_region_name(report)}"
        )
    if s["region_compression"] >= FLAG_SCORE:
        hints += [] if "splice" in hints else ["splice"]
        lines.append(
            f"{label}: the {where} or the centre was compressed coarser before than the "
            f"rest of the image (DCT histogram roughness +{r['region_compression']:.2f})"
        )
    if s["double_compression"] >= FLAG_SCORE:
        hints.append("double_compression")
        lines.append(
            f"{label}: DCT histogram shows periodic gaps of an earlier coarser JPEG "
            f"(roughness {r['double_compression']:.2f}, last quality ~{report.jpeg_quality})"
        )
    if s["upsampling"] >= FLAG_SCORE:
        hints.append("synthetic")
        lines.append(
            f"{label}: periodic upsampling grid in the high-pass spectrum "
            f"(peak {r['upsampling']:.1f})"
        )
    if not hints:
        lines.append(
            f"{label}: no forensic trace above threshold (max score {max(s.values()):.2f})"
        )
    return hints, lines


def check_deepfake(evidence: Evidence) -> CheckResult:
    """The deepfake check on the selfie (and the ID front if present). Never raises."""
    started = time.perf_counter()
    hints: list[str] = []
    explanations: list[str] = []
    risk = 0.0
    digest = hashlib.sha256()
    for kind in (ArtifactKind.selfie, ArtifactKind.id_front):
        data = evidence.media.get(kind)
        if data is None:
            if kind is ArtifactKind.selfie:
                return _failed("selfie_missing", "no selfie in the evidence", started)
            continue
        try:
            rgb, faces = decode_with_faces(data)
            report = analyse_image(rgb, data if data[:2] == b"\xff\xd8" else None, faces)
        except ValueError as exc:
            return _failed("image_undecodable", f"{kind.value}: {exc}", started)
        kind_hints, lines = explain(report, kind.value)
        if evidence.keep_artifact is not None:
            ref = evidence.keep_artifact(kind, report.heatmap_png(), "image/png")
            lines.append(
                f"{kind.value}: region heatmap PNG kept as evidence "
                f"sha256={ref.sha256} object_key={ref.object_key}"
            )
        hints += [h for h in kind_hints if h not in hints]
        explanations += lines
        risk = max(risk, *report.scores.values())
        digest.update(repr(sorted(report.raw.items())).encode())
    video = evidence.media.get(ArtifactKind.liveness_video)
    if video is not None:
        video_risk, video_hints, video_lines = _video_signals(video)
        risk = max(risk, video_risk)
        hints += [h for h in video_hints if h not in hints]
        explanations += video_lines
        digest.update(repr(video_lines).encode())
    return CheckResult(
        kind=CheckKind.deepfake,
        status=CheckStatus.completed,
        risk_score=round(risk, 4),
        confidence=round(abs(risk - 0.5) * 2, 4),
        attack_hints=hints,
        provider=PROVIDER,
        model_version=MODEL_VERSION,
        latency_ms=int((time.perf_counter() - started) * 1000),
        raw_response_sha256=digest.hexdigest(),
        explanations=explanations,
    )


def _video_signals(video: bytes) -> tuple[float, list[str], list[str]]:
    """(risk, hints, explanations) of the temporal face-vs-background check on the clip."""
    from signgate.detectors.temporal import JITTER_THRESHOLD, temporal_consistency
    from signgate.detectors.video import VideoUndecodable, frames_with_faces

    try:
        report = temporal_consistency(frames_with_faces(video))
    except VideoUndecodable as exc:
        return 0.0, [], [f"liveness video: not analysed ({exc})"]
    if report is None:
        return 0.0, [], ["liveness video: too few frames with one face for the temporal check"]
    score = squash(report.excess, JITTER_THRESHOLD)
    line = (
        f"liveness video: face texture jitter {report.face_jitter:.2f} vs background "
        f"{report.background_jitter:.2f} log2 over {report.frames} frames "
        f"(excess threshold {JITTER_THRESHOLD})"
    )
    if score >= FLAG_SCORE:
        return score, ["temporal_inconsistency"], [f"{line}: the face is re-rendered per frame"]
    return score, [], [line]


def decode_with_faces(data: bytes) -> tuple[np.ndarray, Sequence[Face] | None]:
    """RGB uint8 (read-only) and its faces, through the per-process cache shared with the
    other face detectors; ValueError if the bytes are not an image. A detector fault gives
    faces None (`face_region` then tries again and degrades to the centre region)."""
    try:
        from signgate.detectors.faces import ImageUndecodable, image_faces
    except ImportError:  # pragma: no cover - faces.py not available
        return _decode(data), None
    try:
        shared = image_faces(data)
    except ImageUndecodable as exc:
        raise ValueError(str(exc)) from exc
    except Exception:  # noqa: BLE001 - not a decode fault (decoded again below) or a detector fault
        return _decode(data), None
    return shared.rgb, shared.faces


def _decode(data: bytes) -> np.ndarray:
    """RGB uint8; ValueError if the bytes are not an image."""
    try:
        from signgate.detectors.faces import decode_image
    except ImportError:  # pragma: no cover - faces.py not available
        decode_image = None  # type: ignore[assignment]
    try:
        if decode_image is not None:
            return decode_image(data)
        with Image.open(io.BytesIO(data)) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    except Exception as exc:  # noqa: BLE001 - every decoder fault is "undecodable"
        raise ValueError(str(exc)) from exc


def _failed(
    reason: str,
    message: str,
    started: float,
    kind: CheckKind = CheckKind.deepfake,
    version: str = MODEL_VERSION,
) -> CheckResult:
    """A check that could not run: status error with an actionable reason code."""
    return CheckResult(
        kind=kind,
        status=CheckStatus.error,
        provider=PROVIDER,
        model_version=version,
        latency_ms=int((time.perf_counter() - started) * 1000),
        explanations=[message],
        reason=reason,
    )
