"""decide: the pure policy engine, behind an activity so policy files can change without
touching workflow determinism (the decision and the policy's sha256 land in history)."""

from __future__ import annotations

from temporalio import activity

from activities.errors import reason_coded
from policies.engine import decide as policy_decide
from policies.engine import load_policy
from signgate.models import DecideRequest, Decision


@activity.defn(name="decide")
@reason_coded
async def decide(request: DecideRequest) -> Decision:
    policy = load_policy(request.policy_id)
    return policy_decide(
        policy,
        request.checks,
        evidence_flags=request.evidence_flags,
        step_ups_done=request.step_ups_done,
    )
