"""unlock_signing: the only way to a signing attestation, and only through the ledger.

It re-reads the committed decision from the ledger (not from the caller's word), refuses
anything but a committed `accept`, and records the unlock itself as a ledger entry whose
body holds the attestation, so a retried activity hands back the very same token.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from signgate.attestation import issue_attestation
from signgate.errors import BadInput
from signgate.models import (
    Action,
    AttestationClaims,
    LedgerReceipt,
    Mode,
    Unlocked,
    UnlockRequest,
)


class SigningActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="unlock_signing")
    @reason_coded
    async def unlock_signing(self, request: UnlockRequest) -> Unlocked:
        # The app hears of the unlock from the saga's `unlocked` status event
        # (activities/notify.py), never from here: an unlock does not wait for the app.
        return await asyncio.to_thread(self._unlock, request)

    def _unlock(self, request: UnlockRequest) -> Unlocked:
        ledger = self._deps.ledger
        key = f"{request.session_id}:signing_unlocked"
        existing = ledger.receipt_for(key)
        if existing is not None:
            return self._replay(existing)
        committed = ledger.find_by_hash(request.decision_receipt.entry_hash)
        if (
            committed is None
            or committed.seq != request.decision_receipt.seq
            or committed.entry_type != "decision"
            or committed.session_id != request.session_id
        ):
            raise BadInput(
                "no committed decision with that receipt", reason="decision_not_committed"
            )
        shadow = committed.body.get("mode") == Mode.shadow.value
        if not shadow and committed.body["decision"]["action"] != Action.accept.value:
            raise BadInput("the committed decision is not accept", reason="decision_not_accept")
        now = int(time.time())
        claims = AttestationClaims(
            mode=Mode.shadow if shadow else Mode.enforce,
            sub=request.subject_ref,
            sid=request.session_id,
            intent=request.intent,
            decision=request.decision.action,
            tier=request.decision.tier,
            ledger_seq=committed.seq,
            ledger_entry_hash=committed.entry_hash,
            evidence_merkle_root=request.merkle_root,
            policy_id=request.decision.policy.policy_id,
            policy_version=request.decision.policy.version,
            policy_sha256=request.decision.policy.sha256,
            iat=now,
            exp=now + self._deps.settings.attestation_ttl_s,
            jti=f"{request.session_id}:{committed.entry_hash[:16]}",
        )
        token = issue_attestation(self._deps.signer, claims)
        receipt = ledger.append(
            request.session_id,
            "signing_unlocked",
            key,
            {
                "decision_seq": committed.seq,
                "attestation": token,
                "claims": claims.model_dump(mode="json"),
            },
        )
        return Unlocked(attestation=token, claims=claims, ledger=receipt)

    def _replay(self, receipt: LedgerReceipt) -> Unlocked:
        entry = self._deps.ledger.get(receipt.seq)
        assert entry is not None
        claims = AttestationClaims.model_validate(entry.body["claims"])
        return Unlocked(attestation=entry.body["attestation"], claims=claims, ledger=receipt)
