"""Attack generators: turn a bona fide RGB image into a labelled attack sample.

Pure, deterministic functions (same input and seed, same bytes out) used by the detector
tests and the evaluation harness. They simulate the physical or digital trace each attack
leaves; they are not photorealistic forgeries and must not be read as a measure of how
well the detectors do against real attackers.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """Encode RGB as a baseline JPEG at `quality` (Pillow / libjpeg standard tables)."""
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def screen_recapture(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A photo of the image shown on a screen.

    The image is magnified onto an RGB-stripe sub-pixel grid, photographed at a slight
    angle and non-integer scale (the grid beats against the camera sampling: moiré),
    with the display gamma, a specular glare blob and a dark bezel along one edge.
    """
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    pitch = 3
    big = cv2.resize(rgb, (w * pitch, h * pitch), interpolation=cv2.INTER_NEAREST).astype(
        np.float32
    )
    mask = np.full((h * pitch, w * pitch, 3), 0.25, np.float32)
    for channel in range(3):
        mask[:, channel::pitch, channel] = 1.0
    mask[pitch - 1 :: pitch, :, :] *= 0.35  # dark gaps between pixel rows
    shown: np.ndarray = big * mask * 1.6
    angle = float(rng.uniform(2.0, 5.0))
    scale = float(rng.uniform(0.355, 0.37))
    centre = (w * pitch / 2.0, h * pitch / 2.0)
    warp = cv2.getRotationMatrix2D(centre, angle, 1.0)
    shown = cv2.warpAffine(shown, warp, (w * pitch, h * pitch), flags=cv2.INTER_LINEAR)
    photo: np.ndarray = cv2.resize(
        shown, (int(w * pitch * scale), int(h * pitch * scale)), interpolation=cv2.INTER_LINEAR
    )
    photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR)
    photo = 255.0 * (np.clip(photo, 0, 255) / 255.0) ** float(rng.uniform(0.7, 0.8))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.1, 0.4) * h
    radius = float(rng.uniform(0.06, 0.1)) * min(h, w)
    glare = np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2)))
    photo = photo + 255.0 * 1.4 * glare[..., None]
    bezel = int(rng.uniform(0.04, 0.07) * w)
    photo[:, :bezel] = 12.0
    photo += rng.normal(0.0, 2.0, photo.shape)
    return _u8(photo)


def print_attack(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A photo of the image printed on paper.

    Reduced colour gamut (ink cannot reach the screen primaries, paper is not white),
    a rotated halftone dot screen, paper fibre texture and a slight defocus blur.
    """
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + 0.45 * (img - grey)  # gamut: desaturate
    img = 35.0 + img * (200.0 - 35.0) / 255.0  # ink black .. paper white
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.deg2rad(float(rng.uniform(15.0, 45.0)))
    period = float(rng.uniform(4.0, 5.0))
    u = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period
    v = (-xx * np.sin(theta) + yy * np.cos(theta)) * 2 * np.pi / period
    dots = 0.5 + 0.5 * np.cos(u) * np.cos(v)
    img = img * (0.85 + 0.15 * dots[..., None])
    fibre = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 1.5)
    img += 6.0 * fibre[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    return _u8(img)


def face_splice(rgb: np.ndarray, donor_rgb: np.ndarray, box: Box, seed: int) -> np.ndarray:
    """Paste `box` (x0, y0, x1, y1) from the donor into the image with a feathered edge.

    The donor patch keeps its own history, as a face pasted from another photo does: it
    carries another camera's (higher) noise level and was compressed at JPEG quality 40
    on its own 8x8 grid, which lands on the host at the box offset.
    """
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = box
    h, w = rgb.shape[:2]
    pad = int(0.15 * min(x1 - x0, y1 - y0))
    px0, py0, px1, py1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    # The donor patch is compressed on its own 8x8 grid, which lands on the host at the
    # box offset: unless the box is 8-aligned, the two JPEG grids disagree there.
    size = (px1 - px0, py1 - py0)
    patch = cv2.resize(donor_rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    patch += rng.normal(0.0, 6.0, patch.shape)
    patch = _decode(jpeg_bytes(_u8(patch), 40)).astype(np.float32)
    donor = rgb.astype(np.float32).copy()
    donor[py0:py1, px0:px1] = patch
    alpha: np.ndarray = np.zeros(rgb.shape[:2], np.float32)
    alpha[y0:y1, x0:x1] = 1.0
    feather = max(1.0, 0.03 * min(x1 - x0, y1 - y0))
    alpha = cv2.GaussianBlur(alpha, (0, 0), feather)[..., None]
    out = rgb.astype(np.float32) * (1.0 - alpha) + donor * alpha
    return _u8(out)


def double_jpeg(rgb: np.ndarray, q1: int, q2: int) -> bytes:
    """Compress at `q1`, decode, compress again at `q2` (an edited and re-saved photo)."""
    return jpeg_bytes(_decode(jpeg_bytes(rgb, q1)), q2)


def generator_upsample(rgb: np.ndarray, factor: int = 2) -> np.ndarray:
    """Downscale by `factor`, then upsample like a generator's transposed convolution.

    Zero insertion followed by an uneven kernel (the centre tap outweighs the sum of its
    neighbours) leaves the classic checkerboard: a grid of period `factor` in brightness.
    """
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    sh, sw = small.shape[:2]
    up = np.zeros((sh * factor, sw * factor, 3), np.float32)
    up[::factor, ::factor] = small
    taps = np.array(
        [0.44 if abs(i) < factor else 0.0 for i in range(-factor + 1, factor)], np.float32
    )
    taps[factor - 1] = 1.0
    for i in range(1, factor):
        taps[factor - 1 - i] = taps[factor - 1 + i] = 0.92 * (1.0 - i / factor)
    up = cv2.sepFilter2D(up, -1, taps, taps, borderType=cv2.BORDER_REFLECT)
    up = cv2.resize(up, (w, h), interpolation=cv2.INTER_NEAREST) if up.shape[:2] != (h, w) else up
    return _u8(up)


def strip_metadata(jpeg: bytes) -> bytes:
    """Drop every APPn (EXIF, XMP, ICC, ...) and COM segment, keeping the image data."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError("corrupt JPEG marker")
        marker = jpeg[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += jpeg[pos:]
            return bytes(out)
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length
    raise ValueError("JPEG without image data")
