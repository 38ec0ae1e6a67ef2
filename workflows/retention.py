"""RetentionSweepWorkflow: one sweep, started by a Temporal Schedule (daily by default).

A workflow rather than a cron job so each sweep is visible, retried and recorded in
Temporal like everything else; the erasing itself is one idempotent activity (every
erasure's ledger entry is keyed per session), so a retried sweep never erases twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from signgate.retention import (
        RetentionSweepInput,
        RetentionSweepReport,
        RetentionSweepRequest,
    )


@workflow.defn(name="RetentionSweepWorkflow")
class RetentionSweepWorkflow:
    @workflow.run
    async def run(self, sweep: RetentionSweepInput) -> RetentionSweepReport:
        as_of = sweep.as_of or workflow.now()
        return await workflow.execute_activity(
            "sweep_retention",
            RetentionSweepRequest(as_of=as_of),
            result_type=RetentionSweepReport,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5),  # bad input is non-retryable anyway
        )
