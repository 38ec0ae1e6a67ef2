"""The policy report over a real ledger, written by the real commit_decision activity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from typer.testing import CliRunner

import signgate.ledger
from activities.deps import ActivityDeps
from activities.ledger import LedgerActivities
from cli.policy import policy_app
from signgate.ledger import SqliteLedger
from signgate.models import (
    Action,
    CommitRequest,
    Decision,
    Mode,
    PolicyRef,
    ReviewerRole,
    ReviewRecord,
    RiskTier,
)
from signgate.policy_report import policy_report
from signgate.signer import Signer

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
V1 = PolicyRef(policy_id="default", version="2026.11.1", sha256="aa" * 32)
V2 = PolicyRef(policy_id="default", version="2026.12.1", sha256="bb" * 32)
SAGA = PolicyRef(policy_id="saga", version="fail-safe", sha256="0" * 64)


class Clock:
    """Stands in for `datetime` inside signgate.ledger: entries get the times we choose."""

    at = T0

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return cls.at


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteLedger:
    monkeypatch.setattr(signgate.ledger, "datetime", Clock)
    return SqliteLedger(tmp_path / "ledger.sqlite3", Signer.load_or_create(tmp_path / "keys"))


def at(seconds: float) -> None:
    Clock.at = T0 + timedelta(seconds=seconds)


def seal(ledger: SqliteLedger, session: str, t: float) -> None:
    at(t)
    ledger.append(session, "evidence_sealed", f"{session}:evidence_sealed:1", {"round": 1})
    ledger.append(session, "checks_completed", f"{session}:checks_completed:1", {"round": 1})


def review(ledger: SqliteLedger, session: str, t: float, who: str, approve: bool) -> ReviewRecord:
    at(t)
    role = ReviewerRole.senior_reviewer if who == "rev-bob" else ReviewerRole.reviewer
    record = ReviewRecord(
        reviewer_id=who, role=role, approve=approve, reason="looked at it", at=Clock.at
    )
    ledger.append(session, "review", f"{session}:review:{who}", record.model_dump(mode="json"))
    return record


async def commit(
    ledger: SqliteLedger,
    session: str,
    t: float,
    policy: PolicyRef,
    action: Action,
    tier: RiskTier,
    reasons: list[str],
    decided_by: str = "policy",
    mode: Mode = Mode.enforce,
    reviews: list[ReviewRecord] | None = None,
) -> None:
    at(t)
    decision = Decision(
        action=action,
        tier=tier,
        risk_score=0.2,
        reasons=reasons,
        policy=policy,
        decided_by=decided_by,
    )
    activities = LedgerActivities(cast(ActivityDeps, SimpleNamespace(ledger=ledger)))
    await activities.commit_decision(
        CommitRequest(
            session_id=session,
            tenant_id="demo",
            mode=mode,
            decision=decision,
            checks=[],
            merkle_roots=["cd" * 32],
            reviews=reviews or [],
        )
    )


async def fill(ledger: SqliteLedger) -> None:
    A, R = Action.accept, Action.reject
    green, yellow, red = RiskTier.green, RiskTier.yellow, RiskTier.red
    # Interleaved sessions: each one's clock starts at its own first entry.
    seal(ledger, "v1-auto-accept", 0)
    seal(ledger, "v1-auto-reject", 5)
    await commit(ledger, "v1-auto-accept", 10, V1, A, green, ["risk_in_accept_band"])  # 10 s
    await commit(ledger, "v1-auto-reject", 25, V1, R, red, ["deepfake_high_risk"])  # 20 s
    seal(ledger, "v1-review-approve", 100)
    rec = review(ledger, "v1-review-approve", 150, "rev-alice", True)
    await commit(
        ledger,
        "v1-review-approve",
        160,
        V1,
        A,
        yellow,
        ["risk_in_review_band", "reviewer_approved"],
        "reviewer:rev-alice",
        reviews=[rec],
    )  # 60 s
    seal(ledger, "v1-review-reject", 200)
    rec = review(ledger, "v1-review-reject", 290, "rev-alice", False)
    await commit(
        ledger,
        "v1-review-reject",
        300,
        V1,
        R,
        red,
        ["risk_in_review_band", "reviewer_rejected"],
        "reviewer:rev-alice",
        reviews=[rec],
    )  # 100 s
    seal(ledger, "v1-shadow-accept", 400)
    await commit(
        ledger,
        "v1-shadow-accept",
        430,
        V1,
        A,
        green,
        ["risk_in_accept_band"],
        mode=Mode.shadow,
    )  # 30 s

    seal(ledger, "v2-review-red-approve", 500)
    recs = [
        review(ledger, "v2-review-red-approve", 510, "rev-alice", True),
        review(ledger, "v2-review-red-approve", 530, "rev-bob", True),
    ]
    await commit(
        ledger,
        "v2-review-red-approve",
        540,
        V2,
        A,
        red,
        ["deepfake_conflict", "reviewer_approved"],
        "reviewer:rev-alice,reviewer:rev-bob",
        reviews=recs,
    )  # 40 s
    seal(ledger, "v2-review-timeout", 600)
    await commit(
        ledger,
        "v2-review-timeout",
        800,
        V2,
        R,
        red,
        ["risk_in_review_band", "review_timeout"],
        "timeout",
    )  # 200 s
    seal(ledger, "v2-shadow-accept", 900)
    await commit(
        ledger,
        "v2-shadow-accept",
        905,
        V2,
        A,
        green,
        ["risk_in_accept_band"],
        mode=Mode.shadow,
    )  # 5 s
    seal(ledger, "v2-review-approve", 1000)
    rec = review(ledger, "v2-review-approve", 1070, "rev-alice", True)
    await commit(
        ledger,
        "v2-review-approve",
        1080,
        V2,
        A,
        yellow,
        ["risk_in_review_band", "reviewer_approved"],
        "reviewer:rev-alice",
        reviews=[rec],
    )  # 80 s

    # Sealing failed: the saga's fail-safe reject, never sealed, so its clock starts at
    # its only entry.
    await commit(ledger, "saga-reject", 1200, SAGA, R, red, ["evidence_hash_mismatch"], "saga")


async def test_counts_rates_and_matrix_per_policy_version(ledger: SqliteLedger) -> None:
    await fill(ledger)
    report = policy_report(ledger)

    assert report.decisions == 10
    assert report.skipped == 0
    assert [(p.policy_id, p.version) for p in report.policies] == [
        ("default", "2026.11.1"),
        ("default", "2026.12.1"),
        ("saga", "fail-safe"),
    ]
    v1, v2, saga = report.policies

    assert v1.sha256 == "aa" * 32
    assert v1.decisions == 5
    assert v1.modes == {"enforce": 4, "shadow": 1}
    assert v1.automated == {"accept": 2, "reject": 1}
    assert (v1.sent_to_review, v1.reviewer_approved, v1.reviewer_rejected) == (2, 1, 1)
    assert v1.review_timeout == 0
    assert v1.review_rate == pytest.approx(2 / 5)
    assert v1.overturn_rate == pytest.approx(1 / 2)
    assert v1.confusion == {
        "accept": {"accept": 2, "reject": 0},
        "review": {"accept": 1, "reject": 1},
        "reject": {"accept": 0, "reject": 1},
    }
    assert v1.median_time_to_decision_s == pytest.approx(30.0)  # 10, 20, 30, 60, 100

    assert v2.decisions == 4
    assert v2.modes == {"enforce": 3, "shadow": 1}
    assert v2.automated == {"accept": 1}
    assert (v2.sent_to_review, v2.reviewer_approved, v2.reviewer_rejected) == (3, 2, 0)
    assert v2.review_timeout == 1
    assert v2.review_rate == pytest.approx(3 / 4)
    assert v2.overturn_rate == pytest.approx(1.0)  # the timeout is nobody's decision
    assert v2.confusion == {
        "accept": {"accept": 1, "reject": 0},
        "review": {"accept": 2, "reject": 1},
        "reject": {"accept": 0, "reject": 0},
    }
    assert v2.median_time_to_decision_s == pytest.approx(60.0)  # 5, 40, 80, 200

    assert saga.decisions == 1
    assert saga.automated == {"reject": 1}
    assert saga.review_rate == 0.0
    assert saga.overturn_rate is None
    assert saga.median_time_to_decision_s == 0.0


def test_empty_ledger(ledger: SqliteLedger) -> None:
    report = policy_report(ledger)
    assert (report.decisions, report.skipped, report.policies) == (0, 0, [])


def test_unreadable_decision_body_is_skipped_not_fatal(ledger: SqliteLedger) -> None:
    ledger.append("s-broken", "decision", "s-broken:decision", {"decision": "garbage"})
    report = policy_report(ledger)
    assert (report.decisions, report.skipped, report.policies) == (0, 1, [])


async def test_cli_report_json_and_table(ledger: SqliteLedger) -> None:
    await fill(ledger)
    runner = CliRunner()
    result = runner.invoke(policy_app, ["report", "--ledger", str(ledger.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decisions"] == 10
    assert data["policies"][0]["confusion"]["review"] == {"accept": 1, "reject": 1}

    table = runner.invoke(policy_app, ["report", "--ledger", str(ledger.path)])
    assert table.exit_code == 0, table.output
    assert "2026.12.1" in table.output and "recommendation vs final" in table.output


def test_cli_missing_ledger(tmp_path: Path) -> None:
    result = CliRunner().invoke(policy_app, ["report", "--ledger", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "ledger_missing" in result.output


def test_cli_empty_ledger(ledger: SqliteLedger) -> None:
    result = CliRunner().invoke(policy_app, ["report", "--ledger", str(ledger.path)])
    assert result.exit_code == 0, result.output
    assert "no decisions" in result.output
