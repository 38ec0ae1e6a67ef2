"""Parked sessions: the worker's memory and the dev server's CPU with many sessions parked
awaiting review, against the same process with none parked (measured first, same run).

A parked session is a `borderline` one: sealed, checked, decided `review`, waiting on its
review timers (a day here). One worker process (`signgate worker`) with the default
workflow cache (`max_cached_workflows=1000`, sticky queue timeout 2 s); beyond 1000, the
oldest runs are evicted from the cache and replayed only if something wakes them.

Run: .venv/bin/python -m bench.parked [--levels 1000,5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench import sessions
from bench.results import Result, ratio
from chaos.stack import Stack, StackConfig

MiB = 1024 * 1024
IDLE_WINDOW_S = 10.0
IDLE_WINDOWS = 12  # two minutes of 10 s windows once the sessions are parked


def idle_cpu(proc: psutil.Process, windows: int = 1) -> list[float]:
    """CPU % (of one core) over each of `windows` consecutive idle windows."""
    samples = []
    proc.cpu_percent(None)
    for _ in range(windows):
        time.sleep(IDLE_WINDOW_S)
        samples.append(proc.cpu_percent(None))
    return samples


async def park(stack: Stack, n: int, concurrency: int = 30) -> float:
    """Start n borderline sessions, wait until all are awaiting review; seconds taken."""
    assert stack.client is not None
    client, queue = stack.client, stack.settings.task_queue
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def one(p: sessions.Prepared) -> None:
        async with gate:
            await sessions.start(client, queue, p)

    await asyncio.gather(*(one(p) for p in sessions.prepare(stack.settings, n, "borderline")))
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        count = await client.count_workflows("OnboardingStatus = 'awaiting_review'")
        if count.count >= n:
            return time.monotonic() - started
        await asyncio.sleep(1.0)
    raise TimeoutError(f"only {count.count} of {n} sessions reached review")


async def measure(levels: list[int], windows: int = IDLE_WINDOWS) -> Result:
    if windows < 2:
        raise ValueError("the first window and at least one later one: windows >= 2")
    rows: list[list[str]] = []
    plot: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parked-") as tmp:
        async with Stack(StackConfig(var_dir=Path(tmp) / "var")) as stack:
            await stack.start(workers=1)
            assert stack.client is not None and stack.devserver.pid is not None
            worker = psutil.Process(stack.workers[0].pid)
            server = psutil.Process(stack.devserver.pid)
            await park(stack, 1)  # warm-up: every code path loaded once
            base_rss = worker.memory_info().rss
            base_cpu = await asyncio.to_thread(idle_cpu, server)
            server_rss = server.memory_info().rss
            rows.append(["1 (baseline)", "", f"{base_rss / MiB:.0f}", "1.00x",
                         f"{server_rss / MiB:.0f}", f"{base_cpu[0]:.1f}", "", ""])  # fmt: skip
            parked = 1
            for level in levels:
                took = await park(stack, level - parked)
                parked = level
                await asyncio.sleep(2)  # let the last activations finish
                rss = worker.memory_info().rss
                # Windows over two minutes (by default): what the server does right after a
                # burst (draining its own queues) apart from what parked sessions cost for good.
                cpu = await asyncio.to_thread(idle_cpu, server, windows)
                rows.append([
                    f"{level:,}", f"{took:.0f}", f"{rss / MiB:.0f}", ratio(rss, base_rss),
                    f"{server.memory_info().rss / MiB:.0f}", f"{cpu[0]:.1f}",
                    f"{statistics.median(cpu[1:]):.1f}", f"{max(cpu[1:]):.1f}",
                ])  # fmt: skip
                plot[f"worker RSS MiB, {level} parked"] = rss / MiB
    return Result(
        title="5. Parked sessions awaiting review",
        notes=(
            "Worker RSS (`signgate worker`, one process, `max_cached_workflows=1000`) and "
            f"the dev server's CPU in {windows} consecutive {IDLE_WINDOW_S:.0f} s windows "
            "once every session is parked (`OnboardingStatus = 'awaiting_review'`): the "
            "first window, then the median and the highest of the others. Baseline: the "
            "same processes with one session parked, measured first (one window)."
        ),
        header=[
            "sessions parked",
            "s to park them",
            "worker RSS MiB",
            "x baseline",
            "server RSS MiB",
            "server CPU %, first window",
            "server CPU %, later windows: median",
            "server CPU %, later windows: highest",
        ],  # fmt: skip
        rows=rows,
        plot=plot,
    )


def run(levels: list[int] | None = None, windows: int = IDLE_WINDOWS) -> Result:
    return asyncio.run(measure(levels or [1000, 5000], windows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1000,5000")
    args = parser.parse_args()
    run([int(x) for x in args.levels.split(",")]).print()


if __name__ == "__main__":
    main()
