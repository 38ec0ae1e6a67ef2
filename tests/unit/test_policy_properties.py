"""Properties of the default policy that must hold for every input, not just the table."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import PERMISSIVENESS, decide, load_policy
from signgate.models import Action, CheckKind, CheckResult, CheckStatus, RiskTier

POLICY = load_policy()
KINDS = list(CheckKind)
SEVERITY = {RiskTier.green: 0, RiskTier.yellow: 1, RiskTier.red: 2}

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
# Uniform floats rarely land where rules switch; the policy's own thresholds (and a hair
# either side) are where a non-monotone rule would show.
EDGES = sorted(
    {
        min(1.0, max(0.0, t + d))
        for t in (
            0.0,
            1.0,
            POLICY.bands.accept_max,
            POLICY.bands.review_max,
            POLICY.single_check.review_at,
            POLICY.deepfake.reject_at,
            POLICY.deepfake.live_and_matching_max,
        )
        for d in (-1e-6, 0.0, 1e-6)
    }
)
risk = st.sampled_from(EDGES) | unit
# Mostly no hints and no flags, so the score rules get exercised rather than drowned out.
hints: st.SearchStrategy[list[str]] = st.just([]) | st.lists(
    st.sampled_from(["synthetic", "capture_quality", "face_swap"]), unique=True, max_size=3
)
flags: st.SearchStrategy[list[str]] = st.just([]) | st.lists(
    st.sampled_from(["replayed_capture", "challenge_mismatch", "near_duplicate"]),
    unique=True,
    max_size=3,
)
step_ups = st.integers(min_value=0, max_value=3)


def completed(kind: CheckKind) -> st.SearchStrategy[CheckResult]:
    return st.builds(
        CheckResult,
        kind=st.just(kind),
        status=st.just(CheckStatus.completed),
        risk_score=risk,
        confidence=st.none() | unit,
        attack_hints=hints,
        provider=st.just("prop"),
    )


def failed(kind: CheckKind) -> st.SearchStrategy[CheckResult]:
    """Unavailable, errored, or completed without a score (garbage)."""
    not_completed = st.builds(
        CheckResult,
        kind=st.just(kind),
        status=st.sampled_from([CheckStatus.unavailable, CheckStatus.error]),
        provider=st.just("prop"),
    )
    scoreless = st.builds(
        CheckResult,
        kind=st.just(kind),
        status=st.just(CheckStatus.completed),
        provider=st.just("prop"),
    )
    return not_completed | scoreless


def any_check(kind: CheckKind) -> st.SearchStrategy[CheckResult]:
    return completed(kind) | failed(kind)


def any_kind_check() -> st.SearchStrategy[CheckResult]:
    return st.sampled_from(KINDS).flatmap(any_check)


@st.composite
def round_with_a_gap(draw: st.DrawFn) -> list[CheckResult]:
    """Checks where at least one required kind is missing, unavailable or errored."""
    gap = draw(st.sampled_from(KINDS))
    checks = [draw(any_check(k)) for k in KINDS if k is not gap and draw(st.booleans())]
    if draw(st.booleans()):
        checks.append(draw(failed(gap)))  # else the gap kind is missing altogether
    return draw(st.permutations(checks))


@st.composite
def round_and_a_raise(draw: st.DrawFn) -> tuple[list[CheckResult], list[CheckResult]]:
    """A round (sometimes with gaps or duplicate kinds) and the same round with one
    completed check's risk raised, everything else fixed."""
    # Mostly complete rounds: a gap caps at review and would hide what the score rules do.
    checks = [draw(completed(k) if draw(st.integers(0, 5)) else any_check(k)) for k in KINDS]
    checks += draw(st.just([]) | st.lists(any_kind_check(), max_size=2))
    target = draw(completed(draw(st.sampled_from(KINDS))))
    at = draw(st.integers(0, len(checks)))
    checks.insert(at, target)
    assert target.risk_score is not None
    at_least = st.floats(min_value=target.risk_score, max_value=1.0, allow_nan=False)
    higher = draw(st.sampled_from([e for e in EDGES if e >= target.risk_score]) | at_least)
    raised = [*checks[:at], target.model_copy(update={"risk_score": higher}), *checks[at + 1 :]]
    return checks, raised


@given(round_with_a_gap(), flags, step_ups)
@settings(max_examples=400)
def test_a_missing_unavailable_or_errored_check_never_yields_accept(
    checks: list[CheckResult], evidence_flags: list[str], done: int
) -> None:
    decision = decide(POLICY, checks, evidence_flags, done)
    assert decision.action is not Action.accept
    assert decision.tier is not RiskTier.green


@given(round_and_a_raise(), flags, step_ups)
@settings(max_examples=1000)
def test_raising_one_risk_never_moves_the_action_toward_accept(
    rounds: tuple[list[CheckResult], list[CheckResult]], evidence_flags: list[str], done: int
) -> None:
    checks, raised = rounds
    before = decide(POLICY, checks, evidence_flags, done)
    after = decide(POLICY, raised, evidence_flags, done)
    assert PERMISSIVENESS[after.action] <= PERMISSIVENESS[before.action], (before, after)
    assert SEVERITY[after.tier] >= SEVERITY[before.tier], (before, after)


@given(st.lists(any_kind_check(), max_size=8), flags, step_ups)
@settings(max_examples=400)
def test_decide_is_deterministic_and_names_the_policy(
    checks: list[CheckResult], evidence_flags: list[str], done: int
) -> None:
    first = decide(POLICY, checks, evidence_flags, done)
    assert decide(POLICY, list(checks), list(evidence_flags), done) == first
    assert first.policy == POLICY.ref
    assert first.reasons and all(first.reasons)
    assert (first.action is Action.accept) == (first.tier is RiskTier.green)
    assert first.action is not Action.reject or first.tier is RiskTier.red


def test_raising_one_risk_on_a_grid_of_thresholds_never_moves_toward_accept() -> None:
    """Exhaustive where sampling is thin: every complete round whose risks sit on either side
    of the per-check thresholds, each compared with the same round one grid step up."""
    eps = 1e-6
    live_max = POLICY.deepfake.live_and_matching_max  # rule fires at <= this
    at_least = (POLICY.deepfake.reject_at, POLICY.single_check.review_at)  # rules fire at >=
    grid = sorted(
        {0.0, 0.5, 1.0, live_max, live_max + eps, *at_least, *(t - eps for t in at_least)}
    )
    results = {
        (kind, r): CheckResult(
            kind=kind, status=CheckStatus.completed, risk_score=r, provider="grid"
        )
        for kind in KINDS
        for r in grid
    }
    rank: dict[tuple[int, ...], int] = {}
    for point in itertools.product(range(len(grid)), repeat=len(KINDS)):
        checks = [results[(kind, grid[i])] for kind, i in zip(KINDS, point, strict=True)]
        rank[point] = PERMISSIVENESS[decide(POLICY, checks).action]
    for point, here in rank.items():
        for k in range(len(KINDS)):
            if point[k] + 1 < len(grid):
                up = (*point[:k], point[k] + 1, *point[k + 1 :])
                assert rank[up] <= here, (dict(zip(KINDS, point, strict=True)), KINDS[k])
