"""`signgate eval`: run the local detectors over a labelled dataset and report, per attack
species, the ISO/IEC 30107-3 error rates and each detector's latency.

A detector result with no risk score (status error) counts as classified *attack*: the
saga treats it so (never a pass), and the report must not flatter it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw
from pydantic import BaseModel

from signgate.detectors.base import Evidence
from signgate.evaluation.dataset import SPECIES
from signgate.evaluation.metrics import PadReport, apcer, bpcer, candidate_thresholds, pad_report
from signgate.models import ArtifactKind, CaptureMetadata, CheckResult

OPERATING_THRESHOLD = 0.5  # risk at which a single check counts as "attack" in this report


class DetectorReport(BaseModel):
    detector: str
    pad: PadReport
    mean_latency_ms: float
    det_points: list[tuple[float, float]]  # (worst-species APCER, BPCER) per threshold


class EvaluationReport(BaseModel):
    dataset: str
    detectors: list[DetectorReport]


def _score(result: CheckResult) -> float:
    return 1.0 if result.risk_score is None else result.risk_score


def _evidence(name: str, data: bytes) -> Evidence:
    return Evidence(
        session_id=f"eval-{name}",
        capture=CaptureMetadata(challenge_nonce="eval"),
        media={ArtifactKind.selfie: data},
    )


def _image_detector(kind: str) -> Callable[[str, bytes], float]:
    from signgate.detectors.local_provider import detector_for
    from signgate.models import CheckKind

    detector = detector_for(CheckKind(kind))
    return lambda name, data: _score(detector(_evidence(name, data)))


def _base(stem: str) -> str:
    return stem.split("-", 1)[0]


def _replay_detector(bona_fide: dict[str, bytes], workdir: Path) -> Callable[[str, bytes], float]:
    """Score 1 when an image is a near copy of a bona fide image from another capture."""
    from signgate.detectors.replay import SqlitePerceptualIndex, check_replay

    index = SqlitePerceptualIndex(workdir / "replay.sqlite3")
    for stem, data in bona_fide.items():
        index.record(_base(stem), ArtifactKind.selfie, f"{hash(stem) & (2**64 - 1):064x}", data)

    def score(name: str, data: bytes) -> float:
        # A bona fide image is compared with other captures only (not its own variants).
        session = _base(name.removeprefix("bona_fide/")) if name.startswith("bona_fide/") else name
        evidence = _evidence(name, data)
        evidence = Evidence(session, evidence.capture, evidence.media)
        return 1.0 if check_replay(evidence, index).flags else 0.0

    return score


def _read(directory: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(directory.glob("*.jp*g"))}


def evaluate(dataset: Path) -> EvaluationReport:
    bona_fide = _read(dataset / "bona_fide")
    if not bona_fide:
        raise ValueError(f"{dataset}/bona_fide holds no images")
    by_detector: dict[str, dict[str, dict[str, bytes]]] = {}
    for species, detector in SPECIES.items():
        samples = _read(dataset / "attack" / species)
        if samples:
            by_detector.setdefault(detector, {})[species] = samples
    reports = []
    with tempfile.TemporaryDirectory() as workdir:
        for detector, species_samples in sorted(by_detector.items()):
            run = (
                _replay_detector(bona_fide, Path(workdir))
                if detector == "replay"
                else _image_detector(detector)
            )
            latencies: list[float] = []

            def timed(
                name: str,
                data: bytes,
                run: Callable[[str, bytes], float] = run,
                latencies: list[float] = latencies,
            ) -> float:
                started = time.perf_counter()
                value = run(name, data)
                latencies.append((time.perf_counter() - started) * 1000)
                return value

            bona_scores = [timed(f"bona_fide/{n}", d) for n, d in bona_fide.items()]
            attack_scores = {
                species: [timed(f"{species}/{n}", d) for n, d in samples.items()]
                for species, samples in species_samples.items()
            }
            det = [
                (max(apcer(s, t) for s in attack_scores.values()), bpcer(bona_scores, t))
                for t in candidate_thresholds(bona_scores, *attack_scores.values())
            ]
            reports.append(
                DetectorReport(
                    detector=detector,
                    pad=pad_report(bona_scores, attack_scores, OPERATING_THRESHOLD),
                    mean_latency_ms=statistics.fmean(latencies),
                    det_points=det,
                )
            )
    return EvaluationReport(dataset=str(dataset), detectors=reports)


def to_markdown(report: EvaluationReport) -> str:
    lines = [
        f"Operating threshold: risk >= {OPERATING_THRESHOLD} counts as attack. "
        "APCER per species, BPCER over all bona fide images, rates as fractions.",
        "",
        "| detector | species | attacks | APCER | BPCER | ACER | BPCER@APCER=5% "
        "| BPCER@APCER=1% | mean ms/image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report.detectors:
        for s in d.pad.species:
            lines.append(
                f"| {d.detector} | {s.species} | {s.presentations} | {s.apcer:.2f} "
                f"| {d.pad.bpcer:.2f} ({d.pad.bona_fide_presentations} bona fide) "
                f"| {d.pad.acer:.2f} | {d.pad.bpcer_at_apcer_5:.2f} "
                f"| {d.pad.bpcer_at_apcer_1:.2f} | {d.mean_latency_ms:.0f} |"
            )
    return "\n".join(lines) + "\n"


def det_plot_png(report: EvaluationReport, path: Path) -> None:
    """A small DET-style plot (worst-species APCER vs BPCER) per detector, with Pillow."""
    size, margin = 480, 48
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    span = size - 2 * margin
    draw.rectangle([margin, margin, size - margin, size - margin], outline="black")
    draw.text((margin, size - margin + 8), "APCER (worst species) 0..1", fill="black")
    draw.text((4, margin - 20), "BPCER 0..1", fill="black")
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    for i, d in enumerate(report.detectors):
        colour = colours[i % len(colours)]
        points = [(margin + a * span, size - margin - b * span) for a, b in d.det_points]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((size - margin - 110, margin + 6 + 14 * i), d.detector, fill=colour)
    image.save(path, format="PNG")
