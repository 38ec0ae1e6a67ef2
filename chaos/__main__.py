"""``python -m chaos [--n 300] [--write RELIABILITY.md]``: run, print the table, exit 1 on
any violated invariant."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from chaos.run import render, run_chaos

MARK = "<!-- chaos run -->"


def write_section(path: Path, table: str) -> None:
    """Replace everything after MARK in `path` (kept above it: the prose)."""
    text = path.read_text() if path.exists() else f"# Reliability\n\n{MARK}\n"
    head = text.split(MARK)[0]
    path.write_text(f"{head}{MARK}\n{table}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--write", type=Path, help="put the table into this file (RELIABILITY.md)")
    parser.add_argument("--keep", type=Path, help="keep the var dir (logs, ledger) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signgate-chaos-") as tmp:
        var_dir = args.keep or Path(tmp) / "var"
        report = asyncio.run(
            run_chaos(
                args.n, var_dir, seed=args.seed, workers=args.workers, concurrency=args.concurrency
            )
        )
    table = render(report)
    print(table)
    if args.write:
        write_section(args.write, table)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
