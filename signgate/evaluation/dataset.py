"""Labelled evaluation datasets: bona fide images and attacks generated from them.

Layout (what `signgate eval` reads):
    DATASET/bona_fide/<name>.jpg
    DATASET/attack/<species>/<name>.jpg
The packaged bona fide set is built from public-domain images that ship inside
scikit-image; no image is downloaded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import piexif
from PIL import Image

from signgate import attacks

# species -> the check kind whose detector must catch it
SPECIES: dict[str, str] = {
    "screen_recapture": "liveness",
    "print": "liveness",
    "face_splice": "deepfake",
    "double_jpeg": "deepfake",
    "generator_upsample": "deepfake",
    "metadata_generator": "provenance",
    "near_replay": "replay",
}

PACKAGED = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera")


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def packaged_bona_fide(out_dir: Path) -> list[Path]:
    """Write the packaged public-domain photos (and a crop and a rescale of each)."""
    from skimage import data

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in PACKAGED:
        rgb = _rgb(getattr(data, name)())
        h, w = rgb.shape[:2]
        variants = {
            name: rgb,
            f"{name}-crop": rgb[h // 10 : h - h // 10, w // 10 : w - w // 10],
            f"{name}-scaled": np.asarray(
                Image.fromarray(rgb).resize((int(w * 0.75), int(h * 0.75)))
            ),
        }
        for stem, image in variants.items():
            path = out_dir / f"{stem}.jpg"
            path.write_bytes(attacks.jpeg_bytes(np.ascontiguousarray(image), 92))
            written.append(path)
    return written


def _centre_box(rgb: np.ndarray) -> attacks.Box:
    h, w = rgb.shape[:2]
    return (w // 3, h // 4, 2 * w // 3, 3 * h // 4)


def _with_generator_exif(jpeg: bytes) -> bytes:
    exif = piexif.dump({"0th": {piexif.ImageIFD.Software: b"Stable Diffusion XL"}})
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def _near_replay(rgb: np.ndarray) -> bytes:
    h, w = rgb.shape[:2]
    resized = Image.fromarray(rgb).resize((int(w * 0.9), int(h * 0.9)))
    return attacks.jpeg_bytes(np.asarray(resized), 70)


def attack_samples(rgb: np.ndarray, donor: np.ndarray, seed: int) -> dict[str, bytes]:
    """Every species' attack built from one bona fide image (JPEG bytes)."""
    builders: dict[str, Callable[[], bytes]] = {
        "screen_recapture": lambda: attacks.jpeg_bytes(attacks.screen_recapture(rgb, seed), 92),
        "print": lambda: attacks.jpeg_bytes(attacks.print_attack(rgb, seed), 92),
        "face_splice": lambda: attacks.jpeg_bytes(
            attacks.face_splice(rgb, donor, _centre_box(rgb), seed), 92
        ),
        "double_jpeg": lambda: attacks.double_jpeg(rgb, 60, 90),
        "generator_upsample": lambda: attacks.jpeg_bytes(attacks.generator_upsample(rgb), 92),
        "metadata_generator": lambda: _with_generator_exif(attacks.jpeg_bytes(rgb, 92)),
        "near_replay": lambda: _near_replay(rgb),
    }
    return {species: build() for species, build in builders.items()}


def generate(from_dir: Path, out_dir: Path, seed: int = 0) -> dict[str, int]:
    """Copy the bona fide images and build every attack species from each; counts."""
    sources = sorted(p for p in from_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not sources:
        raise ValueError(f"no .jpg/.png images in {from_dir}")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sources]
    counts: dict[str, int] = {"bona_fide": 0}
    (out_dir / "bona_fide").mkdir(parents=True, exist_ok=True)
    for index, (path, rgb) in enumerate(zip(sources, images, strict=True)):
        (out_dir / "bona_fide" / f"{path.stem}.jpg").write_bytes(attacks.jpeg_bytes(rgb, 92))
        counts["bona_fide"] += 1
        donor = images[(index + 1) % len(images)]
        for species, data in attack_samples(rgb, donor, seed + index).items():
            target = out_dir / "attack" / species
            target.mkdir(parents=True, exist_ok=True)
            (target / f"{path.stem}.jpg").write_bytes(data)
            counts[species] = counts.get(species, 0) + 1
    return counts
