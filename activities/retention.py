"""sweep_retention: the retention sweep's one side effect (ledger entries + key destruction)."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from signgate.erasure import Erasure
from signgate.errors import Fault
from signgate.retention import RetentionSweepReport, RetentionSweepRequest, sweep


class RetentionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="sweep_retention")
    @reason_coded
    async def sweep_retention(self, request: RetentionSweepRequest) -> RetentionSweepReport:
        return await asyncio.to_thread(self._sweep, request)

    def _sweep(self, request: RetentionSweepRequest) -> RetentionSweepReport:
        deps = self._deps
        data_keys = deps.store.data_keys
        if data_keys is None:
            raise Fault("the evidence store has no data keys", reason="evidence_keys_missing")
        settings = deps.settings
        return sweep(
            Erasure(deps.ledger, data_keys),
            request.as_of,
            settings.evidence_retention_days,
            settings.evidence_retention_days_by_tenant,
        )
