"""Erasure by crypto-shredding, and the legal hold that refuses it.

Erasing a session destroys its data key (`signgate.envelope.DataKeys.erase`): its media
become unreadable everywhere at once, including in an Object Lock bucket that refuses
deletes, while hashes, seals, ledger entries and proofs stay valid because they only ever
named the plaintext's SHA-256. Every hold, release and erasure is a ledger entry, so the
audit trail says who did what and why.

The ledger entry is appended *before* the key is destroyed: a crash in between leaves a
recorded request whose key still exists, and running the erasure again finishes it (the
entry is idempotent). The other order could destroy media with no record of why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signgate.envelope import DataKeys, valid_session_id
from signgate.errors import BadInput
from signgate.ledger import Ledger, receipt_of
from signgate.models import LedgerEntry, LedgerReceipt

ENTRY_ERASED = "evidence_erased"
ENTRY_HOLD = "legal_hold"
ENTRY_RELEASE = "legal_hold_released"
Trigger = Literal["request", "retention"]


class SessionOnHold(BadInput):
    reason = "session_on_legal_hold"
    http_status = 409


class SessionNotOnHold(BadInput):
    reason = "session_not_on_hold"
    http_status = 409


def _require_text(name: str, value: str) -> str:
    if not value or not value.strip():
        raise BadInput(f"{name} must not be empty", reason=f"{name}_missing")
    return value.strip()


@dataclass
class Erasure:
    ledger: Ledger
    data_keys: DataKeys

    def is_held(self, session_id: str) -> bool:
        """Held if the session's latest hold/release entry is a hold."""
        return len(self._holds(session_id)) % 2 == 1

    def hold(self, session_id: str, by: str, reason: str) -> LedgerReceipt:
        """Put a session on legal hold (a no-op returning the current hold if it is held)."""
        events = self._holds(valid_session_id(session_id))
        if len(events) % 2 == 1:
            return receipt_of(events[-1])
        body = {"by": _require_text("by", by), "reason": _require_text("reason", reason)}
        key = f"{session_id}:{ENTRY_HOLD}:{len(events) // 2 + 1}"
        return self.ledger.append(session_id, ENTRY_HOLD, key, body)

    def release(self, session_id: str, by: str, reason: str) -> LedgerReceipt:
        events = self._holds(valid_session_id(session_id))
        if len(events) % 2 == 0:
            raise SessionNotOnHold(f"session {session_id} is not on legal hold")
        body = {"by": _require_text("by", by), "reason": _require_text("reason", reason)}
        key = f"{session_id}:{ENTRY_RELEASE}:{len(events) // 2 + 1}"
        return self.ledger.append(session_id, ENTRY_RELEASE, key, body)

    def erase(
        self, session_id: str, by: str, reason: str, trigger: Trigger = "request"
    ) -> LedgerReceipt:
        """Record the erasure, then destroy the data key. Refused while on legal hold.

        Idempotent: erasing again returns the first erasure's receipt (and finishes a
        destruction a crash interrupted).
        """
        valid_session_id(session_id)
        key = f"{session_id}:{ENTRY_ERASED}"
        receipt = self.ledger.receipt_for(key)
        if receipt is None:
            if self.is_held(session_id):
                raise SessionOnHold(f"session {session_id} is on legal hold: not erased")
            body = {
                "by": _require_text("by", by),
                "reason": _require_text("reason", reason),
                "trigger": trigger,
                "method": "data_key_destroyed",
            }
            receipt = self.ledger.append(session_id, ENTRY_ERASED, key, body)
        self.data_keys.erase(session_id, reason)
        return receipt

    def _holds(self, session_id: str) -> list[LedgerEntry]:
        return [
            e
            for e in self.ledger.entries(session_id)
            if e.entry_type in (ENTRY_HOLD, ENTRY_RELEASE)
        ]
