"""The five identity checks, one activity each so ops see them apart in the history.

Each returns Completed(result) or Pending(vendor_ref); a pending check is completed by the
vendor's webhook, which the gateway verifies and signals into the workflow.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from activities.heartbeat import heartbeating
from policies.engine import load_policy
from signgate.detectors.cache import ResultCache
from signgate.detectors.local_provider import LocalProvider
from signgate.errors import BadInput
from signgate.metrics import CHECK_LATENCY
from signgate.models import CheckKind, CheckOutcome, CheckPlan, CheckPlanRequest, CheckRequest


class CheckActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        cache = ResultCache(deps.settings.var_dir / "detector-cache.sqlite3")
        self._local = LocalProvider(deps.store, cache)

    async def _run(self, kind: CheckKind, request: CheckRequest) -> CheckOutcome:
        if request.kind is not kind:
            raise BadInput(f"{request.kind} sent to the {kind} check", reason="check_kind_mismatch")
        async with heartbeating():
            if self._deps.settings.check_provider == "local":
                outcome = await asyncio.to_thread(self._local.run, request)
            else:
                callback = f"{self._deps.settings.gateway_url}/v1/webhooks/vendor"
                outcome = await self._deps.vendor.submit_check(request, callback)
        if outcome.result is not None:
            result = outcome.result
            CHECK_LATENCY.labels(kind.value, result.provider, result.status.value).observe(
                result.latency_ms / 1000
            )
        return outcome

    @activity.defn(name="check_liveness")
    @reason_coded
    async def check_liveness(self, request: CheckRequest) -> CheckOutcome:
        return await self._run(CheckKind.liveness, request)

    @activity.defn(name="check_deepfake")
    @reason_coded
    async def check_deepfake(self, request: CheckRequest) -> CheckOutcome:
        return await self._run(CheckKind.deepfake, request)

    @activity.defn(name="check_face_match")
    @reason_coded
    async def check_face_match(self, request: CheckRequest) -> CheckOutcome:
        return await self._run(CheckKind.face_match, request)

    @activity.defn(name="check_device")
    @reason_coded
    async def check_device(self, request: CheckRequest) -> CheckOutcome:
        return await self._run(CheckKind.device, request)

    @activity.defn(name="check_provenance")
    @reason_coded
    async def check_provenance(self, request: CheckRequest) -> CheckOutcome:
        return await self._run(CheckKind.provenance, request)

    @activity.defn(name="plan_checks")
    @reason_coded
    async def plan_checks(self, request: CheckPlanRequest) -> CheckPlan:
        """The policy's cheap-first checks when they save local work (see
        `Settings.cheap_first_with_vendor`); the workflow stays ignorant of which are cheap.
        An empty plan runs every check at once."""
        settings = self._deps.settings
        if settings.check_provider == "vendor" and not settings.cheap_first_with_vendor:
            return CheckPlan(cheap_first=[])
        return CheckPlan(cheap_first=load_policy(request.policy_id).cheap_first)
