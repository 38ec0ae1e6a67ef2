"""Heartbeats that say "this worker is alive", so a SIGKILLed worker's activity is retried
elsewhere within the heartbeat timeout instead of holding its session until the
start-to-close timeout runs out (5 minutes for sealing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

# The workflow schedules these activities with a heartbeat timeout of several intervals.
HEARTBEAT_EVERY_S = 2.0


@asynccontextmanager
async def heartbeating(every_s: float = HEARTBEAT_EVERY_S) -> AsyncIterator[None]:
    """Heartbeat from the activity's event loop while the body runs (its work must run in a
    thread, as ours does, or the loop could not beat).

    The first beat comes after `every_s`, not at once: the heartbeat timeout runs from the
    activity's start anyway, and a beat is a server write, so the many activities that
    finish within `every_s` (a seal, a check against a fast vendor) cost none."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
