"""The Temporal Schedule that runs the retention sweep; created idempotently.

Called when the embedded stack or a worker starts, and by `signgate retention schedule`.
One schedule per task queue, so several stacks sharing a Temporal server do not collide.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from signgate.retention import RetentionSweepInput
from signgate.settings import Settings
from workflows.retention import RetentionSweepWorkflow

SWEEP_EVERY = timedelta(days=1)


def retention_schedule_id(settings: Settings) -> str:
    return f"retention-sweep-{settings.task_queue}"


async def ensure_retention_schedule(client: Client, settings: Settings) -> str:
    """Create the daily sweep schedule unless it exists; return its id."""
    schedule_id = retention_schedule_id(settings)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RetentionSweepWorkflow.run,
            RetentionSweepInput(),
            id=schedule_id,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
        # A sweep still running when the next one is due: skip, never two at once.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        pass  # already there: creating it is idempotent by design
    return schedule_id
