"""Per-detector milliseconds on a 1920x1080 JPEG selfie, as a ratio to decoding it.

The baseline (`cv2.imdecode` of the same bytes) is measured in the same run, so the
ratio holds across machines. Goal (issue 3): the cheap tier (device, provenance, replay)
under 5x decode; the full local pass under one second per image on one core.

Two pictures, both 1920x1080 JPEG q90, each as the selfie with an ID photo of distinct
bytes (the same picture at q85), so no cache can serve the ID from the selfie:
- `stretched`: skimage's astronaut stretched to 16:9. Her face is distorted and is not
  found: the worst case for detection (both upsample passes, in both images).
- `face`: the astronaut at 1080x1080 in the middle of the frame (edges replicated), her
  face found on the first pass, like a usable selfie.

Decoded images and their faces are cached per process (`faces.image_faces`), so every
timed call starts with an empty cache: "cold" times one detector as if it ran alone; the
"full local pass" runs every detector in turn on one empty cache, sharing one decode and
one detection per image, as in one worker process.

Run: .venv/bin/python bench/detectors.py [--repeat N]
(`taskset -c 0 ...` pins it to one core: OpenCV would otherwise use every core.)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

from signgate import attacks
from signgate.detectors.base import Evidence
from signgate.detectors.faces import clear_image_cache
from signgate.detectors.local_provider import detector_for
from signgate.detectors.replay import PerceptualIndex, SqlitePerceptualIndex, check_replay
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind

CHEAP = ("device", "provenance", "replay")


def pictures_1080p() -> dict[str, np.ndarray]:
    astronaut = data.astronaut()
    stretched = np.asarray(Image.fromarray(astronaut).resize((1920, 1080)))
    square = np.asarray(Image.fromarray(astronaut).resize((1080, 1080)))
    face = cv2.copyMakeBorder(square, 0, 0, 420, 420, cv2.BORDER_REPLICATE)
    return {"stretched": stretched, "face": face}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    clear_image_cache()
    fn()  # warm-up: model loading is a one-off per process, not per image
    samples = []
    for _ in range(repeat):
        clear_image_cache()  # every image is new to the process, as in production
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(name: str, rgb: np.ndarray, repeat: int, index: PerceptualIndex) -> None:
    rgb = np.ascontiguousarray(rgb)
    jpeg = attacks.jpeg_bytes(rgb, 90)
    evidence = Evidence(
        session_id="bench",
        capture=CaptureMetadata(
            challenge_nonce="n", device_signals={"user_agent": "Mozilla/5.0", "timezone": "UTC"}
        ),
        media={ArtifactKind.selfie: jpeg, ArtifactKind.id_front: attacks.jpeg_bytes(rgb, 85)},
    )
    decode = median_ms(
        lambda: cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), repeat
    )
    detectors: dict[str, Callable[[], object]] = {
        kind.value: functools.partial(detector_for(kind), evidence) for kind in CheckKind
    }
    detectors["replay"] = lambda: check_replay(evidence, index)
    timings = {n: median_ms(fn, repeat) for n, fn in detectors.items()}
    full = median_ms(lambda: [fn() for fn in detectors.values()], repeat)

    print(f"[{name}] baseline cv2.imdecode 1920x1080 JPEG: {decode:.1f} ms (median of {repeat})")
    print(f"{'detector':<12} {'cold ms':>8} {'x decode':>9}")
    for n, ms in timings.items():
        tier = "cheap" if n in CHEAP else "heavy"
        print(f"{n:<12} {ms:>8.1f} {ms / decode:>9.1f}  ({tier})")
    cheap_total = sum(timings[n] for n in CHEAP)
    print(f"cheap tier total {cheap_total:.1f} ms = {cheap_total / decode:.1f}x decode (goal < 5x)")
    print(f"sum of cold detectors {sum(timings.values()):.1f} ms (no sharing between detectors)")
    print(f"full local pass  {full:.1f} ms, shared cache (goal < 1000 ms on one core)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        index = SqlitePerceptualIndex(Path(tmp) / "index.sqlite3")
        for name, rgb in pictures_1080p().items():
            run(name, rgb, repeat, index)


if __name__ == "__main__":
    main()
