"""``python -m bench [--write BENCHMARKS.md] [--plot docs/bench.png] [--quick]``: run the
five issue-6 benchmarks one after another, print each table, and (with --write) replace
the section after MARK in BENCHMARKS.md with the tables, the machine and the date."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest, ledger, orchestration, parallelism, parked
from bench.results import Result

MARK = "<!-- make bench: everything below is rewritten -->"
RESULTS_DIR = Path("var/bench")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average at the end {load}"
    )


def commit() -> str:
    """The checkout's commit, `+` if its code has uncommitted changes ("unknown" outside
    git). Documents and the plot do not count: the bench itself rewrites them."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--",
             ".", ":(exclude)*.md", ":(exclude)docs"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"`{head}`{'+' if dirty else ''}"


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    head = text.split(MARK)[0].rstrip() + "\n\n"
    path.write_text(f"{head}{MARK}\n\n{body}")


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.plot]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.2))
    for ax, result in zip(axes if len(shown) > 1 else [axes], shown, strict=True):
        labels, values = list(result.plot), list(result.plot.values())
        ax.barh(labels, values, color="#4c72b0")
        ax.set_title(result.title.split(":")[0], fontsize=9)
        ax.tick_params(labelsize=7)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.1f}", va="center", fontsize=7)
    fig.suptitle("signgate benchmarks (make bench)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--only", help="comma-separated steps to run; the others' last results are reused"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="where each step's last result is kept (for --only)",
    )
    parser.add_argument(
        "--parked",
        default="300,1000",
        help="levels of parked sessions (the issue asks 1000,5000: ~1.5 minutes per 1000 here)",
    )
    args = parser.parse_args()
    started = datetime.now(UTC)
    load_at_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    quick = args.quick
    levels = [int(x) for x in args.parked.split(",")]
    steps: dict[str, Callable[[], Result]] = {
        "orchestration": lambda: orchestration.run(20 if quick else 40),
        "parallelism": lambda: parallelism.run(10 if quick else 30),
        "ingest": lambda: ingest.run([1, 10] if quick else [1, 100, 1024]),
        "ledger": lambda: ledger.run(300 if quick else 1000),
        "parked": lambda: parked.run([50], windows=2) if quick else parked.run(levels),
    }
    results_dir: Path = args.results
    results_dir.mkdir(parents=True, exist_ok=True)
    for name, step in steps.items():
        if args.only and name not in args.only.split(","):
            continue
        result = step()
        result.measured = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC at {commit()}"
        result.print()
        # Kept per step, so one failed benchmark does not lose the others' figures.
        (results_dir / f"{name}.json").write_text(json.dumps(asdict(result)))
    results = [
        Result(**json.loads((results_dir / f"{name}.json").read_text()))
        for name in steps
        if (results_dir / f"{name}.json").exists()
    ]
    header = (
        f"## Issue 6: orchestration, parallelism, ingest, ledger, parked sessions\n\n"
        f"Written {started:%Y-%m-%d %H:%M} UTC by `python -m bench` on {machine()} (load "
        f"average at the start {load_at_start}); each step says when it ran. The dev "
        "server, the workers, the vendor sandbox, the gateway and the driver all share "
        "these cores, so absolute rates are the machine's; the ratios, each against a "
        "baseline measured in the same run, are what to compare. Plot: `docs/bench.png`.\n\n"
    )
    body = header + "\n".join(r.markdown() for r in results)
    if args.write:
        write_section(args.write, body)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
