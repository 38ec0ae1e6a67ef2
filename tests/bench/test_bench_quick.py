"""`python -m bench --quick`, the issue-6 benchmarks at small sizes, end to end: every
step runs against its own embedded stack (dev server, workers, sandbox, gateway, the twin
workers), and its table lands in the benchmarks file below the hand-written part.

The figures of a quick run on a CI machine mean nothing; what this holds is that `make
bench` still runs, its own checks pass (every saga and no-op-activity saga accepted,
uploads hashed as sent, ledgers verify), and the tables it writes are whole.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TITLES = (
    "1. Orchestration overhead",
    "2. Parallelism",
    "3. Evidence ingest",
    "4. Ledger",
    "5. Parked sessions",
)


def table_after(text: str, title: str) -> list[list[str]]:
    """The rows of the first table under the `### title` heading, header excluded."""
    section = text.split(f"### {title}", 1)[1].split("\n### ", 1)[0]
    lines = section.split("\n|", 1)[1].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def ratio(cell: str) -> float:
    found = re.search(r"\d+\.\d+", cell)
    assert found, cell
    return float(found.group())


@pytest.mark.timeout(900)
def test_a_quick_bench_writes_every_table_below_the_prose(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nHand-written notes stay.\n")
    plot = tmp_path / "bench.png"
    run = subprocess.run(
        [
            sys.executable, "-m", "bench", "--quick",
            "--results", str(tmp_path / "results"),
            "--write", str(out), "--plot", str(plot),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written notes stay.\n")
    for title in TITLES:
        assert f"### {title}" in text, title
    stamps = re.findall(r"Measured \d{4}-\d\d-\d\d \d\d:\d\d UTC at (\S+)\.", text)
    assert len(stamps) == len(TITLES), stamps  # each step says when and at which commit
    assert all(re.fullmatch(r"`[0-9a-f]{7,}`\+?", stamp) for stamp in stamps), stamps

    orchestration = table_after(text, TITLES[0])
    assert [row[0] for row in orchestration] == ["1", "2"]  # 1 and 2 worker processes
    for row in orchestration:
        rates = [float(cell) for cell in row[1:4]]
        assert all(rate > 0 for rate in rates), row
        # The table rounds rates to 0.1/s and ratios to 0.01: compare within that rounding.
        assert ratio(row[4]) == pytest.approx(rates[1] / rates[0], rel=0.03, abs=0.01)
        assert ratio(row[5]) == pytest.approx(rates[2] / rates[0], rel=0.03, abs=0.01)

    parallelism = {row[0]: row[1] for row in table_after(text, TITLES[1])}
    assert parallelism["sum of check latencies (sequential pipeline)"] == "1050"
    assert parallelism["max of check latencies (floor)"] == "400"
    # The checks run in parallel: even a loaded CI machine stays well under their sum.
    assert int(parallelism["**saga p50**, latencies set"].strip("*")) < 1050

    ingest = table_after(text, TITLES[2])
    assert [row[0] for row in ingest] == ["1 MB", "10 MB"]
    assert all(ratio(row[3]) > 0 for row in ingest)

    ledger = {row[0]: row for row in table_after(text, TITLES[3])}
    assert (
        float(ledger["**signed append** (`SqliteLedger.append`)"][1].strip("*").replace(",", ""))
        > 0
    )

    parked = table_after(text, TITLES[4])
    assert [row[0] for row in parked] == ["1 (baseline)", "50"]

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
