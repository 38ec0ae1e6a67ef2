"""JPEG grid misalignment: a pasted region that carries its own 8x8 compression grid.

A face cut from another JPEG and pasted into a photo keeps the blocking grid of its first
compression, anchored where the cut began, not at the host's (0, 0). After the host is
saved again, the pasted region shows a second grid at an offset the rest of the image
does not have (Li, Yuan & Yu 2009, "blocking artifact grid"; Bianchi & Piva 2012,
non-aligned double JPEG). We measure it in the pixel domain, so it also works on a PNG:

- every 8-sample run of a row (and of a column) starting at x is given the energy of its
  three highest 1-D DCT frequencies; a run lying inside one JPEG block is smooth there,
  a run straddling a block edge is not. So the energy, grouped by the run's phase
  (x mod 8), dips at the phase of the grid the pixels were compressed on;
- per 32 x 32 tile, a profile of 8 phases per axis (mean log2 energy, minus the tile's
  median phase, so texture cancels);
- a region (the face, or the centre if no face is found) is compared with the rest of
  the frame: how much deeper the region dips at a phase other than the rest's own grid
  phase, summed over the two axes (log2 units).

What it cannot see: a pasted face resized or re-rendered after its last compression (the
old grid is resampled away), a face whose grid happens to align with the host's in both
axes (1 in 64 for a random cut), an image too small or too smooth for the tiles to
carry a profile, or a photo downscaled after the paste.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TILE = 32  # pixels per tile side (four 8x8 blocks)
PHASES = 8
HIGH_FREQUENCIES = (5, 6, 7)  # 1-D DCT frequencies a coarse JPEG quantises away
HOT_TILES = 3  # side of the tile window (96 px) the location-agnostic heat map pools over


def _dct_rows() -> np.ndarray:
    k = np.arange(PHASES)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


_HF_KERNELS = [_dct_rows()[u][None, :] for u in HIGH_FREQUENCIES]


@dataclass(frozen=True)
class GridReport:
    """`region_excess`: how much deeper (log2, both axes summed) the region dips at a
    foreign grid phase than the rest of the frame; `phase`: that (x, y) phase; `host_phase`:
    the rest's own grid phase."""

    region_excess: float
    phase: tuple[int, int]
    host_phase: tuple[int, int]
    tiles_in_region: int


def _log_run_energy(grey: np.ndarray, along_x: bool) -> np.ndarray:
    """log2(1 + e)[y, x], e the high-frequency 1-D DCT energy of the 8-sample run starting
    at (y, x) along x (a row) or along y (a column)."""
    energy = np.zeros_like(grey)
    for kernel in _HF_KERNELS:
        taps = kernel if along_x else np.ascontiguousarray(kernel.T)
        coef = cv2.filter2D(grey, -1, taps, anchor=(0, 0), borderType=cv2.BORDER_REFLECT)
        cv2.accumulateSquare(coef, energy)
    return np.asarray(cv2.log(energy + 1.0) / np.float32(np.log(2.0)))


def _centred(profile: np.ndarray) -> np.ndarray:
    """Each tile's profile minus its median phase: texture shifts all phases alike."""
    return np.asarray(profile - np.median(profile, axis=-1, keepdims=True))


def phase_profiles(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tiles_y, tiles_x, 8) profiles of the column phase (runs along x) and of the row
    phase (runs along y): mean log2 run energy per phase, minus the tile's median."""
    grey = np.ascontiguousarray(grey, dtype=np.float32)
    th, tw = grey.shape[0] // TILE, grey.shape[1] // TILE
    grey = grey[: th * TILE, : tw * TILE]
    per = TILE // PHASES
    rows = _log_run_energy(grey, along_x=True).reshape(th, TILE, tw, per, PHASES)
    cols = _log_run_energy(grey, along_x=False).reshape(th, per, PHASES, tw, TILE)
    along_x = rows.mean(axis=(1, 3))
    along_y = cols.mean(axis=(1, 4)).transpose(0, 2, 1)
    return _centred(along_x), _centred(along_y)


def _foreign_excess(region: np.ndarray, rest: np.ndarray) -> tuple[float, int, int]:
    """(excess, phase, host phase) for one axis: deepest extra dip outside the host grid."""
    host = int(np.argmin(rest))
    # The host grid's own dip varies with content (deeper in flat regions) and spreads to
    # both neighbouring phases: scale the rest's profile to the region (least squares,
    # scale >= 0), ignore the host phase, and of its two neighbours count only what one
    # has beyond the other (a grid one pixel off shows on one side only, at half weight).
    scale = max(0.0, float(region @ rest) / max(float(rest @ rest), 1e-9))
    deeper = scale * rest - region
    deeper[host] = 0.0
    left, right = (host - 1) % PHASES, (host + 1) % PHASES
    shared = (deeper[left] + deeper[right]) / 2.0
    deeper[left] -= shared
    deeper[right] -= shared
    return float(max(0.0, deeper.max())), int(np.argmax(deeper)), host


def grid_heat_map(along_x: np.ndarray, along_y: np.ndarray) -> np.ndarray:
    """Per-tile foreign-grid excess against the whole frame, pooled over HOT_TILES x
    HOT_TILES tiles: where a pasted grid is, wherever it is (for the heatmap)."""
    total = np.zeros(along_x.shape[:2])
    for profile in (along_x, along_y):
        if profile.size == 0:
            return total
        frame = profile.mean(axis=(0, 1))
        pooled = np.stack(
            [
                cv2.blur(profile[..., p].astype(np.float32), (HOT_TILES, HOT_TILES))
                for p in range(8)
            ],
            axis=-1,
        )
        deeper = frame[None, None, :] - pooled
        deeper[..., int(np.argmin(frame))] = 0.0
        total += np.clip(deeper.max(axis=-1), 0.0, None)
    return total


def grid_misalignment(
    along_x: np.ndarray, along_y: np.ndarray, box: tuple[int, int, int, int]
) -> GridReport | None:
    """Compare the grid phases of `box` (x0, y0, x1, y1) with the rest of the frame.

    `along_x`, `along_y` come from `phase_profiles` of the full-resolution image
    (resampling destroys the grid). None if there are no tiles inside or outside the box.
    """
    th, tw = along_x.shape[:2]
    if th * tw == 0:
        return None
    x0, y0, x1, y1 = box
    centres_y = (np.arange(th) + 0.5) * TILE
    centres_x = (np.arange(tw) + 0.5) * TILE
    inside = np.outer((centres_y >= y0) & (centres_y < y1), (centres_x >= x0) & (centres_x < x1))
    if not inside.any() or inside.all():
        return None
    ex, px, hx = _foreign_excess(along_x[inside].mean(0), along_x[~inside].mean(0))
    ey, py, hy = _foreign_excess(along_y[inside].mean(0), along_y[~inside].mean(0))
    return GridReport(ex + ey, (px, py), (hx, hy), int(inside.sum()))
