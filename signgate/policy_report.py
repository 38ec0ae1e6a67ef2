"""How each policy version performs, read from the audit ledger alone.

One row per policy version (policy_id, version, sha256) that committed `decision` entries.
Each committed decision is classified from its `decided_by` (see `activities/ledger.py`
for the body and `workflows/onboarding.py` for who sets it):

- `policy` (or `saga`, the fail-safe when sealing failed): decided automatically; the
  policy's recommendation is the committed action (accept or reject).
- `reviewer:<id>[,...]`, or any entry with reviews: the policy sent it to review; the
  committed action is the reviewers' (approve -> accept, reject -> reject).
- `timeout`: sent to review and nobody decided in time; the saga rejected it.

Definitions (every rate is None when its denominator is 0):

- review_rate = sent to review / decisions.
- overturn_rate = reviewer-approved / (reviewer-approved + reviewer-rejected). Without a
  person a review never ends in an accept (an unanswered review is rejected), so the
  automated outcome of every review is reject and an approval is what overturns it.
  Review timeouts are left out: nobody decided them. Automated accepts and rejects are
  never reviewed, so they cannot be overturned.
- confusion: the policy's recommendation (accept | review | reject) against the final
  committed action (accept | reject). The recommendation comes from `decided_by`, not from
  the tier: a reviewer's reject forces the committed tier to red, so the tier the policy
  gave a review is not always on the ledger.
- time to decision: the decision entry's created_at minus the created_at of the session's
  first ledger entry (normally its first `evidence_sealed`), so capture time before the
  first seal is not counted; the median is over the version's decisions, in seconds.

Shadow sessions are counted like enforced ones (that is what shadow mode is for) and also
broken out in `modes`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from signgate.models import LedgerEntry

RECOMMENDATIONS = ("accept", "review", "reject")
OUTCOMES = ("accept", "reject")


class LedgerReader(Protocol):
    def entries(self, session_id: str | None = None) -> list[LedgerEntry]: ...


class PolicyVersionStats(BaseModel):
    policy_id: str
    version: str
    sha256: str
    decisions: int = 0
    modes: dict[str, int] = Field(default_factory=dict)  # enforce / shadow -> decisions
    automated: dict[str, int] = Field(default_factory=dict)  # action -> decided with no person
    sent_to_review: int = 0
    reviewer_approved: int = 0
    reviewer_rejected: int = 0
    review_timeout: int = 0
    review_rate: float | None = None
    overturn_rate: float | None = None
    # confusion[recommendation][final action] = sessions
    confusion: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {r: dict.fromkeys(OUTCOMES, 0) for r in RECOMMENDATIONS}
    )
    median_time_to_decision_s: float | None = None


class PolicyReport(BaseModel):
    decisions: int = 0
    skipped: int = 0  # decision entries whose body could not be read
    policies: list[PolicyVersionStats] = Field(default_factory=list)


def policy_report(ledger: LedgerReader) -> PolicyReport:
    """Read every entry once and summarise the `decision` entries per policy version."""
    return summarise(ledger.entries())


def summarise(entries: Iterable[LedgerEntry]) -> PolicyReport:
    first_seen: dict[str, datetime] = {}
    stats: dict[tuple[str, str, str], PolicyVersionStats] = {}
    durations: dict[tuple[str, str, str], list[float]] = {}
    report = PolicyReport()
    for entry in entries:  # chain order
        at = _parse_time(entry.created_at)
        if entry.session_id not in first_seen and at is not None:
            first_seen[entry.session_id] = at
        if entry.entry_type != "decision":
            continue
        parsed = _read_decision(entry.body)
        if parsed is None:
            report.skipped += 1
            continue
        key, action, decided_by, mode, reviewed = parsed
        row = stats.get(key)
        if row is None:
            row = stats[key] = PolicyVersionStats(policy_id=key[0], version=key[1], sha256=key[2])
            durations[key] = []
        report.decisions += 1
        _count(row, action, decided_by, mode, reviewed)
        start = first_seen.get(entry.session_id)
        if start is not None and at is not None:
            durations[key].append((at - start).total_seconds())
    for key, row in stats.items():
        _rates(row, durations[key])
    report.policies = [stats[k] for k in sorted(stats)]
    return report


def _count(row: PolicyVersionStats, action: str, by: str, mode: str, reviewed: bool) -> None:
    row.decisions += 1
    row.modes[mode] = row.modes.get(mode, 0) + 1
    if reviewed:
        row.sent_to_review += 1
        recommendation = "review"
        if by == "timeout":
            row.review_timeout += 1
        elif action == "accept":
            row.reviewer_approved += 1
        else:
            row.reviewer_rejected += 1
    else:
        recommendation = action
        row.automated[action] = row.automated.get(action, 0) + 1
    cells = row.confusion.setdefault(recommendation, dict.fromkeys(OUTCOMES, 0))
    cells[action] = cells.get(action, 0) + 1


def _rates(row: PolicyVersionStats, durations: list[float]) -> None:
    row.review_rate = row.sent_to_review / row.decisions if row.decisions else None
    decided = row.reviewer_approved + row.reviewer_rejected
    row.overturn_rate = row.reviewer_approved / decided if decided else None
    row.median_time_to_decision_s = statistics.median(durations) if durations else None


def _read_decision(
    body: dict[str, Any],
) -> tuple[tuple[str, str, str], str, str, str, bool] | None:
    decision = body.get("decision")
    if not isinstance(decision, dict):
        return None
    policy = decision.get("policy")
    action = decision.get("action")
    if not isinstance(policy, dict) or not isinstance(action, str):
        return None
    key = (
        str(policy.get("policy_id", "?")),
        str(policy.get("version", "?")),
        str(policy.get("sha256", "?")),
    )
    by = str(decision.get("decided_by", "policy"))
    reviews = body.get("reviews")
    reviewed = by.startswith("reviewer:") or by == "timeout" or bool(reviews)
    return key, action, by, str(body.get("mode", "enforce")), reviewed


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
