"""Sealing and checks heartbeat while their work runs in a thread, so a dead worker's
activity is retried after the heartbeat timeout, not the start-to-close timeout."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import heartbeating
from workflows.onboarding import HEARTBEAT_TIMEOUT


@activity.defn
async def slow_work() -> str:
    async with heartbeating(every_s=0.05):
        await asyncio.to_thread(time.sleep, 0.5)
    await asyncio.sleep(0.2)  # after the body: no more beats
    return "done"


async def test_beats_while_the_body_runs_and_stops_after() -> None:
    env = ActivityEnvironment()
    beats: list[float] = []
    env.on_heartbeat = lambda *_: beats.append(time.monotonic())
    started = time.monotonic()
    assert await env.run(slow_work) == "done"
    assert len(beats) >= 5
    assert beats[0] - started >= 0.05  # the first beat comes after one interval
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 0.3
    assert time.monotonic() - beats[-1] >= 0.15  # none during the last 0.2 s


@activity.defn
async def quick_work() -> str:
    async with heartbeating(every_s=0.2):
        await asyncio.to_thread(time.sleep, 0.05)
    return "done"


async def test_an_activity_done_within_one_interval_never_beats() -> None:
    """A beat is a server write: a seal or a check that ends before the first interval
    costs none (the heartbeat timeout runs from the start regardless)."""
    env = ActivityEnvironment()
    beats: list[float] = []
    env.on_heartbeat = lambda *_: beats.append(time.monotonic())
    assert await env.run(quick_work) == "done"
    await asyncio.sleep(0.3)
    assert beats == []


def test_the_timeout_leaves_room_for_several_missed_beats() -> None:
    from activities.heartbeat import HEARTBEAT_EVERY_S

    assert HEARTBEAT_TIMEOUT.total_seconds() >= 4 * HEARTBEAT_EVERY_S
