"""What the session page shows, computed from the status query and the policy file.

Pure functions from models to small view records, so the page template only lays them
out. Thresholds come from the policy the session was decided under; if that file has
changed since (its sha256 differs), no thresholds are shown rather than the wrong ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from policies.loader import load_policy
from policies.model import Policy
from signgate.errors import SigngateError
from signgate.models import (
    CheckKind,
    CheckResult,
    Decision,
    OnboardingStatus,
    ReviewerRole,
    RiskTier,
)


@dataclass(frozen=True)
class Threshold:
    label: str  # what crossing it does, e.g. "review at"
    value: float


@dataclass(frozen=True)
class CheckRow:
    check: CheckResult
    weight: float | None
    thresholds: list[Threshold]
    over: list[str]  # labels of the thresholds this score reaches


@dataclass(frozen=True)
class PolicyView:
    policy_id: str
    version: str
    sha256: str
    loaded: Policy | None
    problem: str | None = None  # why thresholds are not shown


@dataclass(frozen=True)
class FourEyes:
    approvals_needed: int
    senior_needed: bool
    approved_by: list[str]
    rejected_by: list[str]
    pending: list[str] = field(default_factory=list)
    step_up_by: list[str] = field(default_factory=list)  # who asked for a fresh capture
    step_up_open: bool = True  # the session's one step-up is not spent yet (as far as shown)


def policy_view(decision: Decision | None) -> PolicyView | None:
    if decision is None:
        return None
    ref = decision.policy
    try:
        policy = load_policy(ref.policy_id)
    except SigngateError as err:
        return PolicyView(ref.policy_id, ref.version, ref.sha256, None, err.message)
    if policy.sha256 != ref.sha256:
        problem = (
            f"policy file {ref.policy_id!r} changed since this decision "
            f"(now {policy.version}, sha256 {policy.sha256[:12]}...): thresholds not shown"
        )
        return PolicyView(ref.policy_id, ref.version, ref.sha256, None, problem)
    return PolicyView(ref.policy_id, ref.version, ref.sha256, policy)


def thresholds_for(policy: Policy, kind: CheckKind) -> list[Threshold]:
    found = [Threshold("review at", policy.single_check.review_at)]
    if kind is CheckKind.deepfake:
        found.append(Threshold("reject at", policy.deepfake.reject_at))
    if kind in (CheckKind.liveness, CheckKind.face_match):
        found.append(Threshold("strong if at most", policy.deepfake.live_and_matching_max))
    return found


def check_rows(checks: list[CheckResult], policy: Policy | None) -> list[CheckRow]:
    rows = []
    for check in sorted(checks, key=lambda c: list(CheckKind).index(c.kind)):
        thresholds = thresholds_for(policy, check.kind) if policy else []
        score = check.risk_score
        over = [
            t.label
            for t in thresholds
            if score is not None and t.label != "strong if at most" and score >= t.value
        ]
        weight = policy.weight(check.kind) if policy else None
        rows.append(CheckRow(check, weight, thresholds, over))
    return rows


def four_eyes(status: OnboardingStatus) -> FourEyes:
    """Mirrors the workflow's rule: a red-tier review needs two approvers, one senior.
    Verdicts given before a reviewer's step-up were on older evidence: they no longer count."""
    red = status.decision is not None and status.decision.tier is RiskTier.red
    needed = 2 if red else 1
    asked = [n for n, r in enumerate(status.reviews) if r.step_up]
    current = status.reviews[asked[-1] + 1 :] if asked else status.reviews
    approvers = [r for r in current if r.approve]
    rejecters = [r for r in current if not r.approve and not r.step_up]
    has_senior = any(r.role is ReviewerRole.senior_reviewer for r in approvers)
    pending: list[str] = []
    if not rejecters:
        missing = needed - len({r.reviewer_id for r in approvers})
        if missing > 0:
            pending.append(f"{missing} more approval{'s' if missing > 1 else ''}")
        if red and not has_senior:
            pending.append("a senior reviewer's approval")
    return FourEyes(
        approvals_needed=needed,
        senior_needed=red,
        approved_by=[f"{r.reviewer_id} ({r.role.value})" for r in approvers],
        rejected_by=[f"{r.reviewer_id} ({r.role.value})" for r in rejecters],
        pending=pending,
        step_up_by=[f"{r.reviewer_id} ({r.role.value})" for r in status.reviews if r.step_up],
        step_up_open=not asked and status.round < 2,
    )


def sla_left(start: datetime, sla_s: int, now: datetime | None = None) -> timedelta:
    """Counted from the session's start, which is no later than its entry into review:
    the real deadline is never earlier than this, so the console never shows more time
    than is left."""
    return start + timedelta(seconds=sla_s) - (now or datetime.now(UTC))


def human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"
