"""A history written while a worker died mid-saga must replay (chaos finding timer-replay).

The shape is the saga's vendor wait: each check is an activity that answers "pending",
then a wait for the vendor's signal with a timeout timer. When a worker dies, the next
workflow task can carry an activity completion *and* signals for other checks at once.
The live worker then started the new check's timer before cancelling the others', while a
replay with the SDK's legacy job order (signals first) cancels first: the history no
longer replays, and the session's queries fail for good.

`workers.onboarding_worker.build_worker` turns on the SDK's single-batch activation flag,
which is recorded in the history, so live run and replay apply a task's jobs the same way.
The chaos history itself is the regression case: it fails to replay as recorded (legacy
order) and replays once the flag is recorded in it. A fresh run on the real dev server
through a worker death records the flag and replays.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, Worker

with workflow.unsafe.imports_passed_through():
    from tests.conftest import RunningDevServer
    from workers.history import load_history_file, replay_histories
    from workers.onboarding_worker import SINGLE_BATCH, single_batch_activations

CHAOS_FINDING = Path(__file__).parents[2] / "chaos" / "findings" / "timer-replay-5e91fa0b.json"
VENDOR_WAIT = timedelta(seconds=60)
PENDING_TOKENS: dict[str, bytes] = {}


@activity.defn
async def ask_vendor(ref: str) -> str:
    """'fast' answers at once; 'slow' is completed later from outside, as a vendor would."""
    if ref == "slow":
        PENDING_TOKENS[activity.info().workflow_id] = activity.info().task_token
        activity.raise_complete_async()
    return "pending"


@workflow.defn
class VendorWaits:
    def __init__(self) -> None:
        self._results: set[str] = set()

    @workflow.signal
    def vendor_result(self, ref: str) -> None:
        self._results.add(ref)

    @workflow.run
    async def run(self) -> list[str]:
        return list(await asyncio.gather(self._check("fast"), self._check("slow")))

    async def _check(self, ref: str) -> str:
        await workflow.execute_activity(
            ask_vendor, ref, start_to_close_timeout=timedelta(minutes=2)
        )
        try:
            await workflow.wait_condition(lambda: ref in self._results, timeout=VENDOR_WAIT)
        except TimeoutError:
            return f"{ref}: timeout"
        return f"{ref}: answered"


def _worker(client: Client, task_queue: str, *, fixed: bool) -> Worker:
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[VendorWaits],
        activities=[ask_vendor],
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    return single_batch_activations(worker) if fixed else worker


async def _until(handle: WorkflowHandle, event_type: EventType.ValueType, count: int) -> None:
    while True:
        seen = [e async for e in handle.fetch_history_events() if e.event_type == event_type]
        if len(seen) >= count:
            return
        await asyncio.sleep(0.1)


async def _token_of(workflow_id: str) -> bytes:
    while workflow_id not in PENDING_TOKENS:
        await asyncio.sleep(0.1)
    return PENDING_TOKENS[workflow_id]


async def _history_after_worker_death(client: Client, *, fixed: bool) -> WorkflowHandle:
    task_queue = f"activation-order-{uuid.uuid4()}"
    workflow_id = f"vendor-waits-{uuid.uuid4()}"
    async with _worker(client, task_queue, fixed=fixed):
        handle = await client.start_workflow(VendorWaits.run, id=workflow_id, task_queue=task_queue)
        # 'fast' is parked on its vendor wait; 'slow' is still with its vendor.
        await asyncio.wait_for(_until(handle, EventType.EVENT_TYPE_TIMER_STARTED, 1), 20)
        await asyncio.wait_for(_token_of(workflow_id), 20)
    # The worker is gone. Its vendor answers 'slow' and 'fast''s webhook arrives: both
    # land in the one task the next worker picks up after the sticky queue times out.
    await client.get_async_activity_handle(task_token=await _token_of(workflow_id)).complete(
        "pending"
    )
    await handle.signal(VendorWaits.vendor_result, "fast")
    await asyncio.wait_for(_until(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, 1), 20)
    async with _worker(client, task_queue, fixed=fixed):
        await asyncio.wait_for(_until(handle, EventType.EVENT_TYPE_TIMER_STARTED, 2), 20)
        await handle.signal(VendorWaits.vendor_result, "slow")
        assert await asyncio.wait_for(handle.result(), 20) == ["fast: answered", "slow: answered"]
    return handle


async def _replay_failure(handle: WorkflowHandle) -> Exception | None:
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[VendorWaits], data_converter=handle._client.data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


async def test_a_history_written_across_a_worker_death_replays(
    dev_server: RunningDevServer,
) -> None:
    handle = await _history_after_worker_death(dev_server.client, fixed=True)
    assert await _replay_failure(handle) is None
    # The flag is in the history, so every later replay applies jobs the same way.
    first_task = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ][0]
    assert (
        SINGLE_BATCH
        in first_task.workflow_task_completed_event_attributes.sdk_metadata.lang_used_flags
    )


def _chaos_finding(*, with_flag: bool) -> WorkflowHistory:
    """The chaos run's history; `with_flag` records the flag in its first task, as a
    worker built by `build_worker` records it in every run it starts."""
    history = load_history_file(CHAOS_FINDING)
    if with_flag:
        first_task = next(
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        first_task.workflow_task_completed_event_attributes.sdk_metadata.lang_used_flags.append(
            SINGLE_BATCH
        )
    return history


async def test_the_chaos_finding_replays_once_the_flag_is_recorded() -> None:
    """The live worker started provenance's timer before cancelling the four answered
    checks' timers; only the single-batch order reproduces that on replay."""
    [legacy] = await replay_histories([_chaos_finding(with_flag=False)])
    assert not legacy.ok
    assert "TimerMachine" in (legacy.failure or "")
    [flagged] = await replay_histories([_chaos_finding(with_flag=True)])
    assert flagged.ok, flagged.failure
