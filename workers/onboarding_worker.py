"""The onboarding worker: which workflow and activities run on which task queue.

One process polls one task queue with the saga and every activity. Scale out by running
more of these (any number, on any machine that reaches the Temporal frontend).

Tracing comes with the client: the worker inherits its `TracingInterceptor`
(`workers.client.connect_client`), so workflow and activity spans join the trace of
whoever started or signalled the session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker._workflow_instance import _WorkflowLogicFlag
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import all_activities
from activities.deps import ActivityDeps
from activities.retention import RetentionActivities
from signgate.settings import Settings
from workflows.app_events import AppEventWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.retention import RetentionSweepWorkflow

# The SDK's flag for applying all of a workflow task's jobs before any workflow code runs
# (off by default in temporalio 1.35, planned to become the default). Without it, a task
# that carries an activity result *and* signals (as after a worker dies mid-saga) can be
# run in one order live and in another on replay: the history then stops replaying
# (chaos/findings/timer-replay-5e91fa0b.json). Recorded in each history that used it.
SINGLE_BATCH = int(_WorkflowLogicFlag.PROCESS_WORKFLOW_ACTIVATION_JOBS_AS_SINGLE_BATCH)


def single_batch_activations(worker: Worker) -> Worker:
    """Turn the single-batch flag on for the runs this worker starts (histories without it
    still replay with the SDK's legacy order)."""
    worker._set_default_workflow_logic_flag(
        _WorkflowLogicFlag.PROCESS_WORKFLOW_ACTIVATION_JOBS_AS_SINGLE_BATCH, enabled=True
    )
    return worker


def workflow_runner(package: str = "workflows") -> SandboxedWorkflowRunner:
    """The SDK's sandbox, with our `workflows` package passed through: its modules hold
    constants only and import nothing with side effects, so the sandbox need not compile
    and run them again for every new workflow run (about a third of the worker's workflow
    CPU). The sandbox's runtime restrictions (no wall clock, no I/O...) still apply."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(package)
    )


def build_worker(
    client: Client, settings: Settings, deps: ActivityDeps, *, max_cached_workflows: int = 1000
) -> Worker:
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[OnboardingWorkflow, AppEventWorkflow, RetentionSweepWorkflow],
        activities=[*all_activities(deps), RetentionActivities(deps).sweep_retention],
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=16),
        # After a worker dies its sticky queue would hold the next task for 10 s;
        # a short timeout lets another worker pick the session up quickly.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        max_cached_workflows=max_cached_workflows,
        workflow_runner=workflow_runner(),
    )
    return single_batch_activations(worker)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or forever), then drain and close cleanly."""
    from signgate.payload_codec import codec_for
    from signgate.tracing import configure_tracing
    from workers.client import connect_client
    from workers.retention_schedule import ensure_retention_schedule

    configure_tracing("signgate-worker")
    # The signing key is checked against the ledger before the payload codec can mint a
    # key: a lost keys directory is refused with nothing new written into it.
    deps = ActivityDeps.from_settings(settings)
    try:
        client = await connect_client(
            settings.temporal_address,
            settings.temporal_namespace,
            payload_codec=codec_for(settings),
        )
        async with build_worker(client, settings, deps):
            await ensure_retention_schedule(client, settings)
            await (stop or asyncio.Event()).wait()
    finally:
        await deps.aclose()
