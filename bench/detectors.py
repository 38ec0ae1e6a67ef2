"""Per-detector milliseconds on a 1920x1080 JPEG selfie, as a ratio to decoding it.

The baseline (`cv2.imdecode` of the same bytes) is measured in the same run, so the
ratio holds across machines. Goal (issue 3): the cheap tier (device, provenance, replay)
under 5x decode; the full local pass under one second per image on one core.

Run: .venv/bin/python bench/detectors.py [--repeat N]
"""

from __future__ import annotations

import argparse
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
from signgate.detectors.local_provider import detector_for
from signgate.detectors.replay import PerceptualIndex, check_replay
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind

CHEAP = ("device", "provenance", "replay")


def selfie_1080p() -> bytes:
    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((1920, 1080)))
    return attacks.jpeg_bytes(np.ascontiguousarray(rgb), 90)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: model loading is a one-off per process, not per image
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    jpeg = selfie_1080p()
    evidence = Evidence(
        session_id="bench",
        capture=CaptureMetadata(
            challenge_nonce="n", device_signals={"user_agent": "Mozilla/5.0", "timezone": "UTC"}
        ),
        media={ArtifactKind.selfie: jpeg, ArtifactKind.id_front: jpeg},
    )
    decode = median_ms(
        lambda: cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), repeat
    )
    timings: dict[str, float] = {}
    for kind in CheckKind:
        detector = detector_for(kind)
        timings[kind.value] = median_ms(lambda d=detector: d(evidence), repeat)
    with tempfile.TemporaryDirectory() as tmp:
        index = PerceptualIndex(Path(tmp) / "index.sqlite3")
        timings["replay"] = median_ms(lambda: check_replay(evidence, index), repeat)

    print(f"baseline cv2.imdecode 1920x1080 JPEG: {decode:.1f} ms (median of {repeat})")
    print(f"{'detector':<12} {'ms':>8} {'x decode':>9}")
    for name, ms in timings.items():
        tier = "cheap" if name in CHEAP else "heavy"
        print(f"{name:<12} {ms:>8.1f} {ms / decode:>9.1f}  ({tier})")
    cheap_total = sum(timings[n] for n in CHEAP)
    full = sum(timings.values())
    print(f"cheap tier total {cheap_total:.1f} ms = {cheap_total / decode:.1f}x decode (goal < 5x)")
    print(f"full local pass  {full:.1f} ms (goal < 1000 ms on one core)")


if __name__ == "__main__":
    main()
