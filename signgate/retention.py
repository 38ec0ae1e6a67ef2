"""The retention sweep: erase media whose retention window has passed, never a held session.

A session's clock starts at its first `evidence_sealed` ledger entry; its window is the
tenant's override (`evidence_retention_days_by_tenant`, tenant from the `decision` entry)
or `evidence_retention_days`. Erasure is the same crypto-shredding as `signgate erase`,
recorded with `trigger: retention`, so the ledger says why the media went.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import Field

from signgate.models import Frozen, LedgerEntry

if TYPE_CHECKING:
    from signgate.erasure import Erasure

SWEEPER = "retention-sweep"


class RetentionSweepInput(Frozen):
    """`as_of` unset: the workflow's own clock (what the schedule uses)."""

    as_of: datetime | None = None


class RetentionSweepRequest(Frozen):
    as_of: datetime


class RetentionSweepReport(Frozen):
    as_of: datetime
    sessions_checked: int
    erased: list[str] = Field(default_factory=list)
    skipped_on_hold: list[str] = Field(default_factory=list)


class _Session:
    def __init__(self) -> None:
        self.sealed_at: datetime | None = None
        self.tenant_id: str | None = None
        self.erased = False


def _sessions(entries: list[LedgerEntry]) -> dict[str, _Session]:
    sessions: dict[str, _Session] = defaultdict(_Session)
    for entry in entries:
        session = sessions[entry.session_id]
        if entry.entry_type == "evidence_sealed" and session.sealed_at is None:
            session.sealed_at = datetime.fromisoformat(entry.created_at)
        elif entry.entry_type == "decision" and isinstance(entry.body.get("tenant_id"), str):
            session.tenant_id = entry.body["tenant_id"]
        elif entry.entry_type == "evidence_erased":
            session.erased = True
    return sessions


def sweep(
    erasure: Erasure,
    as_of: datetime,
    default_days: int,
    days_by_tenant: dict[str, int],
) -> RetentionSweepReport:
    """Erase every sealed, not yet erased, not held session past its window as of `as_of`."""
    erased: list[str] = []
    held: list[str] = []
    sessions = _sessions(erasure.ledger.entries())
    sealed = {sid: s for sid, s in sessions.items() if s.sealed_at is not None and not s.erased}
    for session_id, session in sorted(sealed.items()):
        days = days_by_tenant.get(session.tenant_id or "", default_days)
        assert session.sealed_at is not None
        if session.sealed_at + timedelta(days=days) > as_of:
            continue
        if erasure.is_held(session_id):
            held.append(session_id)
            continue
        reason = f"retention window of {days} days passed"
        erasure.erase(session_id, by=SWEEPER, reason=reason, trigger="retention")
        erased.append(session_id)
    return RetentionSweepReport(
        as_of=as_of, sessions_checked=len(sealed), erased=erased, skipped_on_hold=held
    )
