"""Orchestration overhead: sessions per second of the full saga (auto-accept, instant
sandbox vendor) against its no-op twin (`bench.twin`: the same activities in the same
parallel/serial pattern with the same payloads), with 1 and 2 worker processes, on one
dev server on a SQLite file with the WAL pragmas (`workers.devserver.SQLITE_PRAGMAS`).

Goal (issue 6): the saga reaches >= 90% of its twin's rate.

A third row runs the saga's own workflow with the twin's no-op activities (`bench.twin
--saga`): its rate against the twin's is what the orchestration costs, and the rest of the
gap to the full saga is the work inside its activities.

Run: .venv/bin/python -m bench.orchestration [--sessions N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
from temporalio.client import Client

from bench import sessions
from bench.results import Result
from bench.twin import TWIN_WORKFLOW, record_shape
from chaos.stack import Stack, StackConfig
from signgate.settings import Settings
from workers.devserver import SQLITE_PRAGMAS

T = TypeVar("T")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


async def timed_cpu(groups: dict[str, list[int]], run: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """`run`'s result and the CPU seconds each group of processes used while it ran: a
    figure that, unlike a rate, does not depend on what else the machine is doing."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    result = await run
    return result, {name: cpu_seconds(pids) - before[name] for name, pids in groups.items()}


VARIANTS = ("twin", "no-op-activity saga", "saga")
ROUNDS = 3  # each variant runs once per round, in a rotated order: drift hits all alike

RunResult = tuple[tuple[float, list[float], list[dict[str, object]]], dict[str, float]]


@dataclass
class Tally:
    """One variant's rounds added up: sessions, seconds and CPU seconds per process group."""

    sessions: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, count: int, rate: float, cpu: dict[str, float]) -> None:
        self.sessions += count
        self.seconds += count / rate
        for group, used in cpu.items():
            self.cpu[group] = self.cpu.get(group, 0.0) + used

    @property
    def rate(self) -> float:
        return self.sessions / self.seconds

    @property
    def per_session(self) -> float:
        """Multiplier from CPU seconds in all to milliseconds per session."""
        return 1000 / self.sessions


def session_runner(
    client: Client, settings: Settings, groups: dict[str, list[int]], n: int, concurrency: int
) -> Callable[[str, str], Awaitable[RunResult]]:
    """Runs n fresh sessions of a workflow type on a task queue, timing CPU by group."""

    async def run(queue: str, workflow: str) -> RunResult:
        prepared = sessions.prepare(settings, n)
        return await timed_cpu(
            groups, sessions.run_many(client, queue, prepared, concurrency, workflow)
        )

    return run


async def run_rounds(
    variants: dict[str, tuple[str, str]],
    run: Callable[[str, str], Awaitable[RunResult]],
) -> dict[str, Tally]:
    """`ROUNDS` runs of every variant (its task queue and workflow type), interleaved, so a
    slower minute of a shared machine does not fall on one variant alone. Every session
    but the twin's must end accepted."""
    tallies = {name: Tally() for name in variants}
    names = list(variants)
    for round_no in range(ROUNDS):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            (rate, _, results), cpu = await run(*variants[name])
            if name != "twin":
                assert all(r["stage"] == "accepted" for r in results), f"a {name} did not accept"
            tallies[name].add(len(results), rate, cpu)
    return tallies


async def measure(n: int, concurrency: int, worker_counts: list[int]) -> Result:
    rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    plot: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        async with Stack(StackConfig(var_dir=Path(tmp) / "var")) as stack:
            await stack.start(workers=0)
            settings, client = stack.settings, stack.client
            assert client is not None
            twin_queue = f"{settings.task_queue}-twin"
            hollow_queue = f"{settings.task_queue}-hollow"
            twins: list[subprocess.Popen[bytes]] = []
            hollows: list[subprocess.Popen[bytes]] = []
            try:
                for workers in worker_counts:
                    while len(stack.live_workers()) < workers:
                        stack.start_worker()
                    # Warm-up, and the recorded shape the twin replays.
                    warm = sessions.prepare(settings, 1)[0]
                    _, first = await sessions.run_one(client, settings.task_queue, warm)
                    assert first["stage"] == "accepted", first
                    handle = client.get_workflow_handle(f"onboarding-{warm.request.session_id}")
                    shape = Path(tmp) / "shape.json"
                    shape.write_text(json.dumps(await record_shape(handle, client)))
                    while len(twins) < workers:
                        twins.append(stack.spawn(
                            f"twin-{len(twins)}",
                            ["-m", "bench.twin", "--shape", str(shape), "--task-queue", twin_queue],
                        ))  # fmt: skip
                    while len(hollows) < workers:
                        hollows.append(stack.spawn(
                            f"hollow-{len(hollows)}",
                            ["-m", "bench.twin", "--saga", "--shape", str(shape),
                             "--task-queue", hollow_queue],
                        ))  # fmt: skip
                    await sessions.run_one(
                        client, twin_queue, sessions.prepare(settings, 1)[0], TWIN_WORKFLOW
                    )
                    _, hollow_first = await sessions.run_one(
                        client, hollow_queue, sessions.prepare(settings, 1)[0]
                    )
                    assert hollow_first["stage"] == "accepted", hollow_first
                    assert stack.devserver.pid and stack.sandbox
                    groups = {
                        "server": [stack.devserver.pid],
                        "saga workers + vendor sandbox": [w.pid for w in stack.live_workers()]
                        + [stack.sandbox.pid],
                        "twin workers": [t.pid for t in twins],
                        "no-op saga workers": [h.pid for h in hollows],
                    }
                    tallies = await run_rounds(
                        {
                            "twin": (twin_queue, TWIN_WORKFLOW),
                            "no-op-activity saga": (hollow_queue, sessions.WORKFLOW_TYPE),
                            "saga": (settings.task_queue, sessions.WORKFLOW_TYPE),
                        },
                        session_runner(client, settings, groups, n, concurrency),
                    )
                    ordered = [tallies[v] for v in VARIANTS]
                    twin_rate, hollow_rate, saga_rate = (t.rate for t in ordered)
                    totals = [sum(t.cpu.values()) * t.per_session for t in ordered]
                    server = [t.cpu["server"] * t.per_session for t in ordered]
                    workers_ms = [
                        t.cpu[group] * t.per_session
                        for t, group in zip(
                            ordered,
                            ["twin workers", "no-op saga workers", "saga workers + vendor sandbox"],
                            strict=True,
                        )
                    ]
                    cpu_rows.append([
                        str(workers),
                        " / ".join(f"{v:.0f}" for v in server),
                        " / ".join(f"{v:.0f}" for v in workers_ms),
                        " / ".join(f"{v:.0f}" for v in totals),
                        f"**{totals[0] / totals[1]:.2f}** / **{totals[0] / totals[2]:.2f}**",
                    ])  # fmt: skip
                    rows.append([
                        str(workers), f"{twin_rate:.1f}", f"{hollow_rate:.1f}",
                        f"{saga_rate:.1f}", f"**{hollow_rate / twin_rate:.2f}**",
                        f"**{saga_rate / twin_rate:.2f}**",
                    ])  # fmt: skip
                    plot[f"saga/s, {workers} worker(s)"] = saga_rate
                    plot[f"twin/s, {workers} worker(s)"] = twin_rate
                    plot[f"no-op-activity saga/s, {workers} worker(s)"] = hollow_rate
            finally:
                for twin in twins + hollows:
                    twin.kill()
                    twin.wait(timeout=10)
    return Result(
        title="1. Orchestration overhead: the saga against its no-op twin",
        notes=(
            f"{ROUNDS} x {n} sessions per cell ({ROUNDS} rounds, each running every variant "
            f"once in a rotated order), {concurrency} in flight, started as the gateway starts "
            "them (start, `status` query for the challenge, `evidence_submitted` signal) "
            "straight on Temporal, until each workflow's result. Auto-accept path, sandbox "
            "answering instantly. The twin (`bench/twin.py`) schedules the activities a "
            "real session scheduled, in the same batches (one batch per workflow task: seal; "
            "the plan as a local activity and the five checks; ledger append, decide, commit "
            "and unlock as local activities, in turn), with the payloads recorded from it, and "
            "does nothing in them. The middle column runs the saga's own workflow with those "
            "same no-op activities under the saga's activity names (`python -m bench.twin "
            "--saga`): the saga's orchestration (its workflow code, capture timer, patch "
            "marker, upserts) without the work inside its activities. Its ratio to the twin "
            "is the cost of the orchestration; the rest of the saga's gap is that work. "
            "Dev server "
            f"on a SQLite file with {', '.join(SQLITE_PRAGMAS)}; workers are separate "
            "processes (`signgate worker`, `python -m bench.twin`), 1000 cached workflows. "
            "Goal: saga >= 0.90x twin.\n\n"
            + _table(
                [
                    "worker processes",
                    "twin sessions/s",
                    "saga workflow, no-op activities sessions/s",
                    "saga sessions/s",
                    "no-op-activity saga / twin",
                    "saga / twin",
                ],
                rows,
            )
            + "\nThe same runs in CPU milliseconds per session (psutil, user + system, "
            "whatever else the machine was doing), each cell twin / saga workflow with "
            "no-op activities / saga: the dev server, the workers (the saga's with the "
            "vendor sandbox that answers its checks; the others have no vendor), and "
            "both. On a machine where all of them share the cores, the twin-to-saga ratio "
            "of total CPU is the rate ratio to expect once the cores are saturated."
        ),
        header=[
            "worker processes",
            "server ms",
            "workers ms",
            "total ms",
            "twin / no-op-activity saga, twin / saga CPU",
        ],
        rows=cpu_rows,
        plot=plot,
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def run(n: int = 60, concurrency: int = 20, worker_counts: list[int] | None = None) -> Result:
    return asyncio.run(measure(n, concurrency, worker_counts or [1, 2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    run(args.sessions, args.concurrency).print()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
