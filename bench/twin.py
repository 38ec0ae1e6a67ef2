"""The saga's no-op twin: the same activities in the same pattern with the same payloads,
doing nothing. The baseline of the orchestration-overhead benchmark.

`record_shape` reads one real auto-accept session's history and keeps, per scheduled
activity, its name, its input payload and its result payload, and the status query's
answer. `TwinWorkflow` then replays that shape: a `status` query, the `evidence_submitted`
signal, `seal` -> five checks in parallel -> ledger append -> decide -> commit -> unlock,
each a `twin_*` activity that is sent the recorded input and returns the recorded output.
So the bytes through Temporal are the saga's; only the work inside the activities (and the
saga's search-attribute upserts) is missing.

A twin worker: `python -m bench.twin --shape FILE --task-queue Q` (what the benchmark
starts, 1 or 2 of them, against the same dev server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.converter import PayloadCodec
from temporalio.worker import Worker

TWIN_WORKFLOW = "BenchNoopTwin"
RETRY = RetryPolicy(maximum_attempts=4)

# name -> [(input, output)] in scheduling order; "status" -> the query answer; "result".
SHAPE: dict[str, Any] = {}


async def record_shape(
    handle: WorkflowHandle[Any, Any], codec: PayloadCodec | None
) -> dict[str, Any]:
    """The activities of one finished session, with their payloads, in scheduling order.

    History payloads are encrypted by the deployment's codec: decoded before reading."""

    async def plain(payload: Payload) -> Any:
        if codec is not None:
            payload = (await codec.decode([payload]))[0]
        return json.loads(payload.data)

    scheduled: dict[int, dict[str, Any]] = {}
    activities: list[dict[str, Any]] = []
    result: Any = None
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            entry = {
                "name": attrs.activity_type.name,
                "input": await plain(attrs.input.payloads[0]),
                "output": None,
            }
            scheduled[event.event_id] = entry
            activities.append(entry)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            scheduled[attrs_c.scheduled_event_id]["output"] = await plain(
                attrs_c.result.payloads[0]
            )
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = await plain(
                event.workflow_execution_completed_event_attributes.result.payloads[0]
            )
    status = await handle.query("status", result_type=dict)
    return {"activities": activities, "status": status, "result": result}


def _step(name: str) -> list[dict[str, Any]]:
    return [a for a in SHAPE["activities"] if a["name"] == name]


@workflow.defn(name=TWIN_WORKFLOW, sandboxed=False)
class TwinWorkflow:
    """Unsandboxed, so it reads the shape this worker process loaded (constant per run)."""

    def __init__(self) -> None:
        self._submission: Any = None

    @workflow.run
    async def run(self, request: dict[str, Any]) -> Any:
        await workflow.wait_condition(lambda: self._submission is not None)
        await self._all("seal_evidence")
        await asyncio.gather(*(self._one(a) for a in SHAPE["activities"] if
                               a["name"].startswith("check_")))  # fmt: skip
        for name in ("append_ledger", "decide", "commit_decision", "unlock_signing"):
            await self._all(name)
        return SHAPE["result"]

    async def _all(self, name: str) -> None:
        for recorded in _step(name):
            await self._one(recorded)

    async def _one(self, recorded: dict[str, Any]) -> Any:
        return await workflow.execute_activity(
            f"twin_{recorded['name']}",
            recorded["input"],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    @workflow.signal(name="evidence_submitted")
    def evidence_submitted(self, submission: dict[str, Any]) -> None:
        self._submission = submission

    @workflow.query(name="status")
    def status(self) -> Any:
        return SHAPE["status"]


def twin_activities() -> list[Callable[..., Awaitable[Any]]]:
    """One `twin_<name>` per recorded activity: takes the input, returns the output."""
    outputs: dict[str, Any] = {a["name"]: a["output"] for a in SHAPE["activities"]}

    def make(name: str) -> Callable[..., Awaitable[Any]]:
        @activity.defn(name=f"twin_{name}")
        async def noop(_: dict[str, Any]) -> Any:
            return outputs[name]

        return noop

    return [make(name) for name in outputs]


async def serve(address: str, task_queue: str) -> None:
    from signgate.payload_codec import codec_for
    from signgate.settings import get_settings
    from workers.client import data_converter

    # The saga's converter, codec included (the stack's settings come from the environment):
    # the twin pays for encryption as the saga does, and reads what the stack's client writes.
    converter = data_converter(codec_for(get_settings()))
    client = await Client.connect(address, data_converter=converter)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[TwinWorkflow],
        activities=twin_activities(),
        # The same settings as `workers.onboarding_worker.build_worker`.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        max_cached_workflows=1000,
    )
    async with worker:
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=Path, required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    SHAPE.update(json.loads(args.shape.read_text()))
    address = os.environ["SIGNGATE_TEMPORAL_ADDRESS"]
    asyncio.run(serve(address, args.task_queue))


if __name__ == "__main__":
    main()
