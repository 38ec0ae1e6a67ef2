"""The evaluation harness on a small dataset built from packaged public-domain photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from signgate import attacks
from signgate.evaluation.dataset import SPECIES, generate
from signgate.evaluation.harness import EvaluationReport, det_plot_png, evaluate, to_markdown


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("bona_fide_source")
    for name in ("astronaut", "coffee"):
        rgb = np.ascontiguousarray(getattr(data, name)())
        (source / f"{name}.jpg").write_bytes(attacks.jpeg_bytes(rgb, 92))
    out = tmp_path_factory.mktemp("dataset")
    counts = generate(source, out, seed=1)
    assert counts == {"bona_fide": 2, **{species: 2 for species in SPECIES}}
    return out


@pytest.fixture(scope="module")
def report(small_dataset: Path) -> EvaluationReport:
    return evaluate(small_dataset)


def test_every_species_is_scored_by_the_detector_meant_to_catch_it(
    report: EvaluationReport,
) -> None:
    scored = {s.species: d.detector for d in report.detectors for s in d.pad.species}
    assert scored == SPECIES
    for detector in report.detectors:
        assert detector.pad.bona_fide_presentations == 2
        assert detector.mean_latency_ms > 0


def test_the_attacks_the_detectors_do_catch_are_caught_without_false_alarms(
    report: EvaluationReport,
) -> None:
    apcer = {s.species: s.apcer for d in report.detectors for s in d.pad.species}
    for species in (
        "print",
        "screen_recapture",
        "double_jpeg",
        "generator_upsample",
        "metadata_generator",
        "near_replay",
    ):
        assert apcer[species] == 0.0, species
    bpcer = {d.detector: d.pad.bpcer for d in report.detectors}
    assert bpcer["liveness"] == 0.0 and bpcer["replay"] == 0.0 and bpcer["provenance"] == 0.0


def test_the_report_and_plot_are_written(report: EvaluationReport, tmp_path: Path) -> None:
    table = to_markdown(report)
    assert "| liveness | print | 2 |" in table
    plot = tmp_path / "det.png"
    det_plot_png(report, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_generates_and_evaluates_a_dataset(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "astronaut.jpg").write_bytes(attacks.jpeg_bytes(data.astronaut(), 90))
    cli = [sys.executable, "-m", "cli"]
    generated = subprocess.run(
        [*cli, "attacks", "generate", "--from", str(source), "--out", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    evaluated = subprocess.run(
        [*cli, "eval", str(tmp_path / "ds"), "--report", str(tmp_path / "r.md")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "| replay | near_replay | 1 | 0.00 |" in (tmp_path / "r.md").read_text()
