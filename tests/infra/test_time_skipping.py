"""The time-skipping test server: days of timers pass in moments, and our search
attributes are registered on it (it has no CLI flag for them)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # The sandbox re-imports this module to run the workflows below.
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from workflows.search_attributes import ONBOARDING_STATUS

TWO_DAYS = timedelta(hours=48)


@workflow.defn
class TwoDayTimerWorkflow:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(TWO_DAYS)
        return "woke"


@workflow.defn
class UpsertStatusWorkflow:
    @workflow.run
    async def run(self, status: str) -> str:
        # Fails the workflow task (in a silent retry loop) if the attribute is unknown.
        workflow.upsert_search_attributes([ONBOARDING_STATUS.value_set(status)])
        return workflow.info().typed_search_attributes.get(ONBOARDING_STATUS) or ""


async def test_a_48_hour_timer_completes_in_seconds(time_skipping_env: WorkflowEnvironment) -> None:
    task_queue = f"timers-{uuid.uuid4()}"
    env_before = await time_skipping_env.get_current_time()
    started = time.monotonic()
    async with Worker(
        time_skipping_env.client, task_queue=task_queue, workflows=[TwoDayTimerWorkflow]
    ):
        result = await asyncio.wait_for(
            time_skipping_env.client.execute_workflow(
                TwoDayTimerWorkflow.run, id=f"timer-{uuid.uuid4()}", task_queue=task_queue
            ),
            timeout=30,
        )
    assert result == "woke"
    assert time.monotonic() - started < 30
    assert await time_skipping_env.get_current_time() - env_before >= TWO_DAYS


async def test_upserting_onboarding_status_works_on_the_test_server(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    task_queue = f"upsert-{uuid.uuid4()}"
    client = time_skipping_env.client
    async with Worker(client, task_queue=task_queue, workflows=[UpsertStatusWorkflow]):
        handle = await client.start_workflow(
            UpsertStatusWorkflow.run,
            "awaiting_review",
            id=f"upsert-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        assert await asyncio.wait_for(handle.result(), timeout=30) == "awaiting_review"
        described = await handle.describe()
    assert described.typed_search_attributes.get(ONBOARDING_STATUS) == "awaiting_review"
