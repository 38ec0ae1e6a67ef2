"""What the console's session page computes: thresholds from the session's own policy
file (or none if it changed), and the four-eyes state as the workflow counts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.console.views import check_rows, four_eyes, human, policy_view, sla_left
from policies.loader import load_policy
from signgate.models import (
    Action,
    CheckKind,
    CheckResult,
    CheckStatus,
    Decision,
    OnboardingStatus,
    PolicyRef,
    ReviewerRole,
    ReviewRecord,
    RiskTier,
    Stage,
)

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def decision(tier: RiskTier, sha256: str | None = None) -> Decision:
    policy = load_policy("default")
    ref = PolicyRef(policy_id="default", version=policy.version, sha256=sha256 or policy.sha256)
    return Decision(action=Action.review, tier=tier, risk_score=0.5, reasons=["x"], policy=ref)


def check(kind: CheckKind, risk: float) -> CheckResult:
    return CheckResult(kind=kind, status=CheckStatus.completed, risk_score=risk, provider="t")


def status(tier: RiskTier, *reviews: tuple[str, ReviewerRole, bool]) -> OnboardingStatus:
    return OnboardingStatus(
        session_id="s1",
        stage=Stage.awaiting_review,
        challenge_nonce="n",
        round=1,
        pending=[],
        checks=[],
        decision=decision(tier),
        reviews=[
            ReviewRecord(reviewer_id=who, role=role, approve=ok, reason="r..", at=AT)
            for who, role, ok in reviews
        ],
        timeline=[],
    )


def test_thresholds_come_from_the_policy_the_session_was_decided_under() -> None:
    view = policy_view(decision(RiskTier.yellow))
    assert view is not None and view.loaded is not None and view.problem is None
    rows = check_rows(
        [check(CheckKind.deepfake, 0.75), check(CheckKind.liveness, 0.05)], view.loaded
    )
    deepfake, liveness = rows[1], rows[0]  # shown in the canonical check order
    assert liveness.check.kind is CheckKind.liveness
    assert [(t.label, t.value) for t in deepfake.thresholds] == [
        ("review at", view.loaded.single_check.review_at),
        ("reject at", view.loaded.deepfake.reject_at),
    ]
    assert deepfake.over == ["reject at"]  # 0.75 >= 0.70, < 0.80
    assert liveness.over == []
    assert deepfake.weight == view.loaded.weights[CheckKind.deepfake]


def test_a_changed_policy_file_shows_no_thresholds_rather_than_wrong_ones() -> None:
    view = policy_view(decision(RiskTier.yellow, sha256="0" * 64))
    assert view is not None and view.loaded is None
    assert view.problem is not None and "changed since this decision" in view.problem
    assert check_rows([check(CheckKind.deepfake, 0.9)], view.loaded)[0].thresholds == []


def test_red_needs_two_approvers_one_senior() -> None:
    alice = ("rev-alice", ReviewerRole.reviewer, True)
    bob = ("rev-bob", ReviewerRole.senior_reviewer, True)
    empty = four_eyes(status(RiskTier.red))
    assert (empty.approvals_needed, empty.senior_needed) == (2, True)
    assert empty.pending == ["2 more approvals", "a senior reviewer's approval"]
    assert four_eyes(status(RiskTier.red, alice)).pending == [
        "1 more approval",
        "a senior reviewer's approval",
    ]
    both = four_eyes(status(RiskTier.red, alice, bob))
    assert both.pending == [] and both.approved_by == [
        "rev-alice (reviewer)",
        "rev-bob (senior_reviewer)",
    ]
    yellow = four_eyes(status(RiskTier.yellow))
    assert (yellow.approvals_needed, yellow.senior_needed, yellow.pending) == (
        1,
        False,
        ["1 more approval"],
    )
    rejected = four_eyes(status(RiskTier.red, ("rev-alice", ReviewerRole.reviewer, False)))
    assert rejected.pending == [] and rejected.rejected_by == ["rev-alice (reviewer)"]


def test_verdicts_before_a_reviewer_step_up_no_longer_count() -> None:
    alice = ("rev-alice", ReviewerRole.reviewer, True)
    shown = status(RiskTier.red, alice)
    asked = ReviewRecord(
        reviewer_id="rev-bob",
        role=ReviewerRole.senior_reviewer,
        approve=False,
        step_up=True,
        reason="blurred",
        at=AT,
    )
    view = four_eyes(shown.model_copy(update={"reviews": [*shown.reviews, asked], "round": 2}))
    assert view.approved_by == [] and view.rejected_by == []  # the step-up is no rejection
    assert view.step_up_by == ["rev-bob (senior_reviewer)"]
    assert view.pending == ["2 more approvals", "a senior reviewer's approval"]
    assert not view.step_up_open
    assert four_eyes(shown).step_up_open


def test_sla_left_counts_from_the_start_and_goes_negative_when_overdue() -> None:
    assert sla_left(AT, 3600, now=AT + timedelta(minutes=15)) == timedelta(minutes=45)
    assert human(sla_left(AT, 60, now=AT + timedelta(minutes=2))) == "-1m 00s"
    assert human(timedelta(hours=3, minutes=59, seconds=5)) == "3h 59m"
