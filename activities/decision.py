"""decide: the policy engine, behind an activity so policy files can change without
touching workflow determinism (the decision and the policy's sha256 land in history); a
decision already committed to the ledger for the session comes first."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from activities.ledger import committed_decision
from policies.engine import decide as policy_decide
from policies.engine import load_policy
from signgate.models import DecideRequest, Decision


class DecisionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="decide")
    @reason_coded
    async def decide(self, request: DecideRequest) -> Decision:
        """The policy's decision, unless the session's decision is already committed: then
        that one stands.

        Why: `decide` runs as a local activity, whose input and result are in history only
        once its workflow task completes. A worker that dies after the commit but before
        that, replaced by one whose policy file for the same id differs (a rolling deploy),
        would decide again, differently, and its commit would conflict with the ledger's
        (`ledger_idempotency_conflict`, the session failed). Reading the ledger first, the
        new worker takes the path the committed decision took, and its commit is the same
        entry again.
        """
        committed = await asyncio.to_thread(
            committed_decision, self._deps.ledger, request.session_id
        )
        if committed is not None:
            return committed
        policy = load_policy(request.policy_id)
        return policy_decide(
            policy,
            request.checks,
            evidence_flags=request.evidence_flags,
            step_ups_done=request.step_ups_done,
        )
