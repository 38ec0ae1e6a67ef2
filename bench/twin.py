"""The saga's no-op twin: the same activities in the same pattern with the same payloads,
doing nothing. The baseline of the orchestration-overhead benchmark.

`record_shape` reads one real auto-accept session's history and keeps, per scheduled
activity and per local activity, its name, its input payload, its result payload and the
workflow task that scheduled it (its *batch*), and the status query's answer.
`TwinWorkflow` then replays that shape: a `status` query, the `evidence_submitted`
signal, then batch after batch (today: seal -> the plan as a local activity and the five
checks -> the checks' results -> ledger append, decide, commit and unlock as local
activities), the activities of a batch in parallel and its local activities one after
another (as the saga's commit and unlock must be), each a `twin_*` activity that is sent
the recorded input and returns the recorded output. A local activity's input never
leaves the worker and is not in history: its recorded output stands in for it. So the
bytes through Temporal and the serial/parallel pattern are the saga's, whatever the saga
schedules; only the work inside the activities, the saga's search-attribute upserts and
patch markers, and its status-event children (none without a callback URL) are missing.

A twin worker: `python -m bench.twin --shape FILE --task-queue Q` (what the benchmark
starts, 1 or 2 of them, against the same dev server).

With `--saga`, the worker runs the saga's own `OnboardingWorkflow` instead, its activities
answered the same way (the recorded output, under the saga's activity names): the saga's
orchestration (its workflow code, timer, patch marker and upserts) with the work inside its
activities taken out. The benchmark's third row, which splits the saga's gap to its twin
into what the orchestration costs and what the work costs.
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
from temporalio.converter import DataConverter
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    # Passed through, so the sandboxed twin reads the shape this worker process loaded.
    from bench.twin_shape import SHAPE

TWIN_WORKFLOW = "BenchNoopTwin"
LOCAL_ACTIVITY_MARKER = "core_local_activity"
RETRY = RetryPolicy(maximum_attempts=4)


async def record_shape(
    handle: WorkflowHandle[Any, Any], source: Client | DataConverter
) -> dict[str, Any]:
    """The activities of one finished session, with their payloads, in scheduling order.

    History payloads are encrypted by the deployment's codec: read through `source`, the
    stack's client (or its converter), as plain JSON values."""

    from workers.client import decode_payloads  # here, not in the sandboxed twin's module

    async def plain(payload: Payload) -> Any:
        return await decode_payloads(source, [payload])

    scheduled: dict[int, dict[str, Any]] = {}
    activities: list[dict[str, Any]] = []
    result: Any = None
    async for event in handle.fetch_history_events():
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == LOCAL_ACTIVITY_MARKER:
            data = json.loads(marker.details["data"].payloads[0].data)
            output = await plain(marker.details["result"].payloads[0])
            activities.append({
                "name": data["activity_type"],
                "batch": marker.workflow_task_completed_event_id,
                "input": output,  # the input stays in the worker; not in history
                "output": output,
                "local": True,
            })  # fmt: skip
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            entry = {
                "name": attrs.activity_type.name,
                "batch": attrs.workflow_task_completed_event_id,
                "input": await plain(attrs.input.payloads[0]),
                "output": None,
                "local": False,
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


def _batches() -> list[list[dict[str, Any]]]:
    batches: dict[int, list[dict[str, Any]]] = {}
    for recorded in SHAPE["activities"]:
        batches.setdefault(recorded["batch"], []).append(recorded)
    return [batches[key] for key in sorted(batches)]


@workflow.defn(name=TWIN_WORKFLOW)
class TwinWorkflow:
    """Sandboxed like the saga: the sandbox's cost per workflow task is orchestration."""

    def __init__(self) -> None:
        self._submission: Any = None

    @workflow.run
    async def run(self, request: dict[str, Any]) -> Any:
        await workflow.wait_condition(lambda: self._submission is not None)
        for batch in _batches():
            remote = [r for r in batch if not r["local"]]
            local = [r for r in batch if r["local"]]
            await asyncio.gather(*(self._one(r) for r in remote), self._in_turn(local))
        return SHAPE["result"]

    async def _in_turn(self, local: list[dict[str, Any]]) -> None:
        for recorded in local:
            await workflow.execute_local_activity(
                f"twin_{recorded['name']}",
                recorded["input"],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )

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


def twin_activities(prefix: str = "twin_") -> list[Callable[..., Awaitable[Any]]]:
    """One `<prefix><name>` per recorded activity: takes the input, returns the output."""
    outputs: dict[str, Any] = {a["name"]: a["output"] for a in SHAPE["activities"]}

    def make(name: str) -> Callable[..., Awaitable[Any]]:
        @activity.defn(name=f"{prefix}{name}")
        async def noop(_: Any) -> Any:
            return outputs[name]

        return noop

    return [make(name) for name in outputs]


async def serve(address: str, task_queue: str, saga: bool = False) -> None:
    from signgate.payload_codec import codec_for
    from signgate.settings import get_settings
    from workers.client import data_converter
    from workers.onboarding_worker import single_batch_activations, workflow_runner
    from workflows.onboarding import OnboardingWorkflow

    # The saga's converter, codec included (the stack's settings come from the environment):
    # the twin pays for encryption as the saga does, and reads what the stack's client writes.
    converter = data_converter(codec_for(get_settings()))
    client = await Client.connect(address, data_converter=converter)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[OnboardingWorkflow if saga else TwinWorkflow],
        activities=twin_activities("" if saga else "twin_"),
        # The same settings as `workers.onboarding_worker.build_worker`.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        max_cached_workflows=1000,
        workflow_runner=workflow_runner() if saga else workflow_runner("bench"),
    )
    async with single_batch_activations(worker):
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=Path, required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument(
        "--saga", action="store_true", help="the saga's workflow with the no-op activities"
    )
    args = parser.parse_args()
    SHAPE.update(json.loads(args.shape.read_text()))
    address = os.environ["SIGNGATE_TEMPORAL_ADDRESS"]
    asyncio.run(serve(address, args.task_queue, args.saga))


if __name__ == "__main__":
    main()
