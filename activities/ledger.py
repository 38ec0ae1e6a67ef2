"""Ledger activities: every entry is idempotent on its key, so retries never duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from signgate.ledger import Ledger
from signgate.metrics import DECISIONS
from signgate.models import CommitRequest, Decision, LedgerAppend, LedgerReceipt

# What a decision entry keeps of each check: enough to audit the score, nothing bulky.
CHECK_FIELDS_IN_LEDGER = frozenset(
    {
        "kind",
        "status",
        "risk_score",
        "provider",
        "model_version",
        "raw_response_sha256",
        "reason",
        "attack_hints",
    }
)


def decision_entry_body(request: CommitRequest) -> dict[str, Any]:
    """The body of a `decision` ledger entry (policy report and audit bundles read it)."""
    return {
        "tenant_id": request.tenant_id,
        "mode": request.mode.value,
        "decision": request.decision.model_dump(mode="json"),
        "checks": [
            c.model_dump(mode="json", include=set(CHECK_FIELDS_IN_LEDGER)) for c in request.checks
        ],
        "evidence_merkle_roots": request.merkle_roots,
        "reviews": [r.model_dump(mode="json", exclude={"ledger"}) for r in request.reviews],
    }


def decision_key(session_id: str) -> str:
    """The idempotency key of a session's one `decision` entry."""
    return f"{session_id}:decision"


def committed_decision(ledger: Ledger, session_id: str) -> Decision | None:
    """The decision the session's `decision` entry holds, if one is committed."""
    receipt = ledger.receipt_for(decision_key(session_id))
    entry = None if receipt is None else ledger.get(receipt.seq)
    return None if entry is None else Decision.model_validate(entry.body["decision"])


class LedgerActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="append_ledger")
    @reason_coded
    async def append_ledger(self, entry: LedgerAppend) -> LedgerReceipt:
        return await asyncio.to_thread(
            self._deps.ledger.append,
            entry.session_id,
            entry.entry_type,
            entry.idempotency_key,
            entry.body,
        )

    @activity.defn(name="commit_decision")
    @reason_coded
    async def commit_decision(self, request: CommitRequest) -> LedgerReceipt:
        body = decision_entry_body(request)
        key = decision_key(request.session_id)
        first_time = await asyncio.to_thread(self._deps.ledger.receipt_for, key) is None
        receipt = await asyncio.to_thread(
            self._deps.ledger.append, request.session_id, "decision", key, body
        )
        if first_time:  # a retried commit is the same decision: count it once
            decision = request.decision
            DECISIONS.labels(decision.action.value, decision.tier.value, request.mode.value).inc()
        return receipt
