"""The default policy, case by case: each row names the behaviour it proves."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from policies import decide, load_policy
from policies.loader import POLICY_DIR
from signgate.detectors.device import no_signals_result
from signgate.errors import BadInput, Fault
from signgate.models import Action, CheckKind, CheckResult, CheckStatus, RiskTier

POLICY = load_policy()


def check(
    kind: CheckKind,
    risk: float | None = 0.05,
    *,
    status: CheckStatus = CheckStatus.completed,
    hints: tuple[str, ...] = (),
    confidence: float | None = None,
) -> CheckResult:
    return CheckResult(
        kind=kind,
        status=status,
        risk_score=risk if status is CheckStatus.completed else None,
        confidence=confidence,
        attack_hints=list(hints),
        provider="test",
    )


def round_of(**overrides: float | CheckResult | None) -> list[CheckResult]:
    """A bona fide round (every risk 0.05); a kind given a float gets that risk, a
    CheckResult replaces it, None leaves it out."""
    checks: list[CheckResult] = []
    for kind in CheckKind:
        given = overrides.get(kind.value, 0.05)
        if isinstance(given, CheckResult):
            checks.append(given)
        elif given is not None:
            checks.append(check(kind, given))
    return checks


def risks(liveness: float, deepfake: float, face_match: float, device: float, provenance: float):
    return round_of(
        liveness=liveness,
        deepfake=deepfake,
        face_match=face_match,
        device=device,
        provenance=provenance,
    )


@dataclass(frozen=True)
class Case:
    checks: list[CheckResult]
    action: Action
    tier: RiskTier
    reasons: tuple[str, ...]  # must appear, the first one first
    flags: tuple[str, ...] = ()
    step_ups_done: int = 0
    absent: tuple[str, ...] = field(default=())  # reasons that must not appear


CASES: dict[str, Case] = {
    "bona_fide_is_accepted_green": Case(
        round_of(), Action.accept, RiskTier.green, ("risk_within_accept_band",)
    ),
    "clear_deepfake_with_synthetic_hint_is_rejected": Case(
        round_of(
            deepfake=check(CheckKind.deepfake, 0.97, hints=("synthetic",), confidence=0.95),
            liveness=0.5,
        ),
        Action.reject,
        RiskTier.red,
        ("synthetic_media_high_confidence", "deepfake_risk_high"),
    ),
    "synthetic_hint_at_high_confidence_rejects_even_with_low_scores": Case(
        round_of(provenance=check(CheckKind.provenance, 0.1, hints=("synthetic",), confidence=0.9)),
        Action.reject,
        RiskTier.red,
        ("synthetic_media_high_confidence",),
    ),
    "synthetic_hint_at_low_confidence_alone_does_not_reject": Case(
        round_of(deepfake=check(CheckKind.deepfake, 0.1, hints=("synthetic",), confidence=0.5)),
        Action.accept,
        RiskTier.green,
        ("risk_within_accept_band",),
    ),
    "borderline_score_goes_to_review_not_step_up": Case(
        risks(0.5, 0.4, 0.3, 0.2, 0.1), Action.review, RiskTier.yellow, ("risk_in_review_band",)
    ),
    "score_at_accept_edge_is_accepted": Case(
        risks(0.3, 0.3, 0.3, 0.3, 0.3), Action.accept, RiskTier.green, ("risk_within_accept_band",)
    ),
    "score_at_review_edge_is_reviewed": Case(
        risks(0.6, 0.6, 0.6, 0.6, 0.6), Action.review, RiskTier.yellow, ("risk_in_review_band",)
    ),
    "score_above_review_band_is_rejected": Case(
        risks(0.65, 0.65, 0.65, 0.65, 0.0), Action.reject, RiskTier.red, ("risk_in_reject_band",)
    ),
    "unavailable_check_is_reviewed_even_with_perfect_others": Case(
        round_of(
            liveness=0.0,
            deepfake=check(CheckKind.deepfake, status=CheckStatus.unavailable),
            face_match=0.0,
            device=0.0,
            provenance=0.0,
        ),
        Action.review,
        RiskTier.yellow,
        ("check_unavailable:deepfake",),
    ),
    "errored_check_is_reviewed": Case(
        round_of(device=check(CheckKind.device, status=CheckStatus.error)),
        Action.review,
        RiskTier.yellow,
        ("check_error:device",),
    ),
    "completed_check_without_score_counts_as_error": Case(
        round_of(face_match=check(CheckKind.face_match, None)),
        Action.review,
        RiskTier.yellow,
        ("check_error:face_match",),
    ),
    "missing_check_is_reviewed": Case(
        round_of(provenance=None), Action.review, RiskTier.yellow, ("check_missing:provenance",)
    ),
    "missing_check_scores_best_case_so_partial_review_band_stays_review": Case(
        # 0.35*0.69 + 0.15*0.79 + 0.05*0.79 = 0.3995 without liveness: only a lower bound.
        round_of(
            liveness=check(CheckKind.liveness, status=CheckStatus.unavailable),
            deepfake=0.69,
            face_match=0.79,
            device=0.79,
        ),
        Action.review,
        RiskTier.yellow,
        ("check_unavailable:liveness", "partial_risk_in_review_band"),
    ),
    "missing_check_still_rejects_when_present_risk_alone_proves_it": Case(
        # 0.45*0.79 + 0.35*0.69 + 0.05*0.79 = 0.6365 > 0.60 whatever face_match would say.
        round_of(
            liveness=0.79,
            deepfake=0.69,
            face_match=check(CheckKind.face_match, status=CheckStatus.unavailable),
            device=0.79,
        ),
        Action.reject,
        RiskTier.red,
        ("partial_risk_in_reject_band", "check_unavailable:face_match"),
    ),
    "strong_liveness_and_match_with_high_deepfake_is_red_review": Case(
        round_of(deepfake=0.85),
        Action.review,
        RiskTier.red,
        ("deepfake_high_but_live_and_matching",),
        absent=("deepfake_risk_high",),
    ),
    "high_deepfake_without_strong_liveness_is_rejected": Case(
        round_of(deepfake=0.75, liveness=0.2),
        Action.reject,
        RiskTier.red,
        ("deepfake_risk_high",),
    ),
    "one_terrible_check_is_not_outvoted": Case(
        round_of(device=0.95),
        Action.review,
        RiskTier.red,
        ("check_risk_very_high:device",),
    ),
    "replayed_capture_is_rejected": Case(
        round_of(), Action.reject, RiskTier.red, ("replayed_capture",), flags=("replayed_capture",)
    ),
    "replayed_capture_rejects_even_with_an_unavailable_check": Case(
        round_of(liveness=check(CheckKind.liveness, status=CheckStatus.unavailable)),
        Action.reject,
        RiskTier.red,
        ("replayed_capture", "check_unavailable:liveness"),
        flags=("replayed_capture",),
    ),
    "challenge_mismatch_asks_for_a_new_capture": Case(
        round_of(),
        Action.step_up,
        RiskTier.yellow,
        ("challenge_mismatch",),
        flags=("challenge_mismatch",),
    ),
    "unknown_evidence_flag_is_reviewed": Case(
        round_of(),
        Action.review,
        RiskTier.yellow,
        ("unknown_evidence_flag:mystery",),
        flags=("mystery",),
    ),
    "poor_capture_quality_asks_for_a_new_capture": Case(
        round_of(liveness=check(CheckKind.liveness, 0.2, hints=("capture_quality",))),
        Action.step_up,
        RiskTier.yellow,
        ("poor_capture_quality",),
    ),
    "poor_capture_quality_after_one_step_up_is_reviewed": Case(
        round_of(liveness=check(CheckKind.liveness, 0.2, hints=("capture_quality",))),
        Action.review,
        RiskTier.yellow,
        ("poor_capture_quality", "step_up_limit_reached"),
        step_ups_done=1,
    ),
    "poor_capture_quality_with_borderline_score_is_reviewed": Case(
        round_of(
            liveness=check(CheckKind.liveness, 0.5, hints=("capture_quality",)),
            deepfake=0.4,
            face_match=0.3,
            device=0.2,
        ),
        Action.review,
        RiskTier.yellow,
        ("risk_in_review_band", "poor_capture_quality"),
    ),
    # The local device detector's own "knows nothing" result (risk 0.5, confidence 0).
    "no_device_signals_goes_to_review_not_accept": Case(
        round_of(device=no_signals_result()),
        Action.review,
        RiskTier.yellow,
        ("no_device_signals",),
        absent=("poor_capture_quality",),
    ),
    "motion_challenge_not_met_asks_for_a_new_capture": Case(
        round_of(liveness=check(CheckKind.liveness, 0.6, hints=("challenge_not_met",))),
        Action.step_up,
        RiskTier.yellow,
        ("challenge_not_met",),
    ),
    "motion_challenge_not_met_twice_goes_to_review": Case(
        round_of(liveness=check(CheckKind.liveness, 0.6, hints=("challenge_not_met",))),
        Action.review,
        RiskTier.yellow,
        ("challenge_not_met", "step_up_limit_reached"),
        step_ups_done=1,
    ),
    "no_device_signals_hint_on_another_kind_is_not_the_device_rule": Case(
        round_of(liveness=check(CheckKind.liveness, 0.05, hints=("no_device_signals",))),
        Action.accept,
        RiskTier.green,
        ("risk_within_accept_band",),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_default_policy_case(case: Case) -> None:
    decision = decide(POLICY, case.checks, case.flags, case.step_ups_done)
    assert (decision.action, decision.tier) == (case.action, case.tier), decision.reasons
    assert decision.reasons[0] == case.reasons[0]
    assert set(case.reasons) <= set(decision.reasons)
    assert not set(case.absent) & set(decision.reasons)
    assert decision.policy == POLICY.ref


def test_accept_reports_the_weighted_risk() -> None:
    decision = decide(POLICY, risks(0.1, 0.2, 0.3, 0.4, 0.9))
    assert decision.risk_score == pytest.approx(0.45 * 0.1 + 0.35 * 0.2 + 0.15 * 0.3 + 0.05 * 0.4)


def test_risk_score_is_absent_when_a_weighted_check_is_missing() -> None:
    assert decide(POLICY, round_of(liveness=None)).risk_score is None
    # provenance carries no weight, so without it the score is still computable
    assert decide(POLICY, round_of(provenance=None)).risk_score == pytest.approx(0.05 * 1.0)


def test_decision_names_the_default_policy_file() -> None:
    raw = (POLICY_DIR / "default.toml").read_bytes()
    ref = decide(POLICY, round_of()).policy
    assert (ref.policy_id, ref.version) == ("default", "2026.11.4")
    assert ref.sha256 == hashlib.sha256(raw).hexdigest()


def test_policy_sha256_changes_when_the_file_bytes_change(tmp_path: Path) -> None:
    shutil.copy(POLICY_DIR / "default.toml", tmp_path / "default.toml")
    before = load_policy(directory=tmp_path)
    with (tmp_path / "default.toml").open("a") as f:
        f.write("# a comment changes the bytes, so it changes the hash\n")
    after = load_policy(directory=tmp_path)
    assert before.version == after.version
    assert before.sha256 != after.sha256
    assert after.sha256 == hashlib.sha256((tmp_path / "default.toml").read_bytes()).hexdigest()


@pytest.mark.parametrize("policy_id", ["no-such-policy", "../default", "Default", ""])
def test_unknown_policy_id_is_bad_input(policy_id: str) -> None:
    with pytest.raises(BadInput) as err:
        load_policy(policy_id)
    assert err.value.reason == "unknown_policy"


def test_every_packaged_policy_file_loads() -> None:
    files = sorted(POLICY_DIR.glob("*.toml"))
    assert files
    for path in files:
        assert load_policy(path.stem).id == path.stem


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (("accept_max = 0.30", 'accept_max = "low"'), "bands.accept_max"),
        (("accept_max = 0.30", "acept_max = 0.30"), "bands.acept_max"),
        (("accept_max = 0.30", "accept_max = 0.70"), "bands"),
        (("liveness = 0.45", "liveness = 0.55"), "weights must sum to 1"),
        (('action = "reject"', 'action = "accept"'), "hints.0.action"),
        (('version = "2026.11.4"', 'version = "2026.11.4'), "not valid TOML"),
        (('id = "default"', 'id = "other"'), "id:"),
    ],
)
def test_malformed_policy_file_names_the_file_and_field(
    tmp_path: Path, edit: tuple[str, str], names: str
) -> None:
    text = (POLICY_DIR / "default.toml").read_text()
    assert edit[0] in text
    (tmp_path / "default.toml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(Fault) as err:
        load_policy(directory=tmp_path)
    assert err.value.reason == "malformed_policy"
    assert str(tmp_path / "default.toml") in err.value.message
    assert names in err.value.message


@pytest.mark.parametrize(
    ("provider", "with_vendor", "cheap"),
    [
        ("local", False, [CheckKind.provenance, CheckKind.device]),
        ("vendor", True, [CheckKind.provenance, CheckKind.device]),
        ("vendor", False, []),  # a vendor's "cheap" checks are round trips too: all at once
    ],
)
async def test_the_policy_chooses_the_cheap_first_checks(
    tmp_path: Path, provider: str, with_vendor: bool, cheap: list[CheckKind]
) -> None:
    from activities.checks import CheckActivities
    from activities.deps import ActivityDeps
    from signgate.models import CheckPlanRequest
    from tests.support import make_settings

    settings = make_settings(
        tmp_path / "var",
        "http://127.0.0.1:9",
        check_provider=provider,
        cheap_first_with_vendor=with_vendor,
    )
    deps = ActivityDeps.from_settings(settings)
    try:
        plan = await CheckActivities(deps).plan_checks(CheckPlanRequest(policy_id="default"))
    finally:
        await deps.aclose()
    assert plan.cheap_first == cheap
    text = (POLICY_DIR / "default.toml").read_text()
    (tmp_path / "default.toml").write_text(
        text.replace('cheap_first = ["provenance", "device"]', "")
    )
    assert load_policy(directory=tmp_path).cheap_first == []  # absent: all checks at once


async def test_a_committed_decision_stands_over_the_policy_file(tmp_path: Path) -> None:
    """`decide` reads the ledger first. A workflow task that committed a decision and was
    lost (its worker died) is retried on a worker whose policy file decides otherwise:
    that worker must decide what was committed, so its commit is the same entry again and
    not a `ledger_idempotency_conflict` that fails the session."""
    from activities.decision import DecisionActivities
    from activities.deps import ActivityDeps
    from activities.ledger import LedgerActivities
    from signgate.models import CommitRequest, DecideRequest, Mode
    from tests.support import make_settings

    deps = ActivityDeps.from_settings(make_settings(tmp_path / "var", "http://127.0.0.1:9"))
    try:
        decisions, ledger = DecisionActivities(deps), LedgerActivities(deps)
        request = DecideRequest(session_id="s-committed", policy_id="default", checks=round_of())
        by_policy = await decisions.decide(request)
        assert by_policy.action is Action.accept
        # What the lost task committed under the policy file of the time.
        earlier = by_policy.model_copy(
            update={"action": Action.review, "tier": RiskTier.yellow, "reasons": ["earlier"]}
        )
        commit = CommitRequest(
            session_id="s-committed",
            tenant_id="tenant-a",
            mode=Mode.enforce,
            decision=earlier,
            checks=request.checks,
            merkle_roots=["ab" * 32],
        )
        receipt = await ledger.commit_decision(commit)

        again = await decisions.decide(request)
        assert again == earlier
        recommitted = commit.model_copy(update={"decision": again})
        assert await ledger.commit_decision(recommitted) == receipt
        # Another session, with nothing committed, is decided by the policy file.
        other = request.model_copy(update={"session_id": "s-other"})
        assert await decisions.decide(other) == by_policy
    finally:
        await deps.aclose()
