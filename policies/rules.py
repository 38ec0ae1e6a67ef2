"""The rules of a policy, each a pure function from the facts to *caps* on the action.

A cap says "at best this action". The decision is the most restrictive cap, so a rule can
only ever take permission away, never grant it. Every rule is monotone in every risk score:
raising a risk never raises the cap it yields (thresholds are compared with >= / > on risk,
and the weighted score is a non-negative combination of risks). With the minimum of monotone
caps being monotone, raising any risk can never move a decision toward accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from policies.model import Policy, default_tier
from signgate.models import Action, CheckKind, CheckResult, CheckStatus, RiskTier

# Least permissive first. step_up is more permissive than review: it asks the person to
# capture again, and the next round is decided by the policy again, not waved through.
PERMISSIVENESS: Mapping[Action, int] = {
    Action.reject: 0,
    Action.review: 1,
    Action.step_up: 2,
    Action.accept: 3,
}
SEVERITY: Mapping[RiskTier, int] = {RiskTier.green: 0, RiskTier.yellow: 1, RiskTier.red: 2}
KIND_ORDER = list(CheckKind)  # report per-kind reasons in one stable order


@dataclass(frozen=True)
class Cap:
    action: Action
    tier: RiskTier
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the rules see of one round.

    `risks` holds, per kind, the worst risk among completed results that carry a score.
    `gaps` holds, per required kind, why it cannot be trusted: missing, unavailable, errored
    (a completed result without a score counts as an error: the vendor answered garbage).
    Several results for one kind are combined conservatively: the worst risk, and any gap.
    """

    risks: Mapping[CheckKind, float]
    gaps: Mapping[CheckKind, str]
    completed: Sequence[CheckResult]
    flags: Sequence[str]


def gather_facts(policy: Policy, checks: Sequence[CheckResult], flags: Sequence[str]) -> Facts:
    risks: dict[CheckKind, float] = {}
    gaps: dict[CheckKind, str] = {}
    for check in checks:
        if check.status is CheckStatus.completed and check.risk_score is not None:
            risks[check.kind] = max(check.risk_score, risks.get(check.kind, 0.0))
        elif check.status is CheckStatus.unavailable:
            gaps.setdefault(check.kind, f"check_unavailable:{check.kind.value}")
        else:
            gaps.setdefault(check.kind, f"check_error:{check.kind.value}")
    for kind in policy.required_checks:
        if kind not in risks and kind not in gaps:
            gaps[kind] = f"check_missing:{kind.value}"
    required_gaps = {k: v for k, v in gaps.items() if k in policy.required_checks}
    completed = [c for c in checks if c.status is CheckStatus.completed]
    return Facts(
        risks=risks, gaps=required_gaps, completed=completed, flags=list(dict.fromkeys(flags))
    )


def weighted_risk(policy: Policy, facts: Facts) -> tuple[float, bool]:
    """The weighted risk and whether it is complete.

    Missing weighted checks count as 0 (best case), so an incomplete score is a *lower
    bound*: it can only prove a reject, and the required-checks rule caps everything else
    at review. Rounding to 6 places is monotone and keeps 0.30 from reading 0.30000000000004.
    """
    weighted = [k for k in KIND_ORDER if policy.weight(k) > 0]
    total = sum(policy.weight(k) * facts.risks.get(k, 0.0) for k in weighted)
    complete = all(k in facts.risks and k not in facts.gaps for k in weighted)
    return min(1.0, round(total, 6)), complete


# --------------------------------------------------------------------------- the rules


def required_checks(policy: Policy, facts: Facts) -> list[Cap]:
    """A required check that is missing, unavailable or errored: never accept."""
    return [
        Cap(Action.review, RiskTier.yellow, facts.gaps[k]) for k in KIND_ORDER if k in facts.gaps
    ]


def evidence_flags(policy: Policy, facts: Facts) -> list[Cap]:
    """Flags raised while sealing (replayed capture, challenge mismatch); unknown ones fail safe."""
    rules = {rule.flag: rule for rule in policy.flags}
    caps = []
    for flag in facts.flags:
        rule = rules.get(flag)
        if rule is None:
            action = Action(policy.unknown_flag_action)
            caps.append(Cap(action, default_tier(action), f"unknown_evidence_flag:{flag}"))
        else:
            action = Action(rule.action)
            caps.append(Cap(action, rule.tier or default_tier(action), rule.reason))
    return caps


def attack_hints(policy: Policy, facts: Facts) -> list[Cap]:
    """Attack hints on completed checks (synthetic media, poor capture quality)."""
    caps = []
    for rule in policy.hints:
        if any(
            (rule.kinds is None or c.kind in rule.kinds)
            and rule.hint in c.attack_hints
            and (c.confidence or 0.0) >= rule.min_confidence
            for c in facts.completed
        ):
            action = Action(rule.action)
            caps.append(Cap(action, rule.tier or default_tier(action), rule.reason))
    return caps


def deepfake(policy: Policy, facts: Facts) -> list[Cap]:
    """High deepfake risk rejects, unless the person is demonstrably live and matching."""
    risk = facts.risks.get(CheckKind.deepfake)
    if risk is None or risk < policy.deepfake.reject_at:
        return []
    strong = all(
        k in facts.risks
        and k not in facts.gaps
        and facts.risks[k] <= policy.deepfake.live_and_matching_max
        for k in (CheckKind.liveness, CheckKind.face_match)
    )
    if strong:
        return [Cap(Action.review, RiskTier.red, "deepfake_high_but_live_and_matching")]
    return [Cap(Action.reject, RiskTier.red, "deepfake_risk_high")]


def single_check(policy: Policy, facts: Facts) -> list[Cap]:
    """One terrible check is never out-voted by good ones."""
    rule = policy.single_check
    return [
        Cap(Action.review, rule.tier, f"check_risk_very_high:{k.value}")
        for k in KIND_ORDER
        if facts.risks.get(k, 0.0) >= rule.review_at
    ]


def risk_band(policy: Policy, facts: Facts) -> list[Cap]:
    """The weighted risk against the bands; always yields exactly one cap."""
    score, complete = weighted_risk(policy, facts)
    prefix = "" if complete else "partial_"
    if score <= policy.bands.accept_max:
        return [Cap(Action.accept, RiskTier.green, f"{prefix}risk_within_accept_band")]
    if score <= policy.bands.review_max:
        return [Cap(Action.review, RiskTier.yellow, f"{prefix}risk_in_review_band")]
    return [Cap(Action.reject, RiskTier.red, f"{prefix}risk_in_reject_band")]


Rule = Callable[[Policy, Facts], list[Cap]]

# The order only sets the order of reasons among equally restrictive caps.
RULES: tuple[Rule, ...] = (
    required_checks,
    evidence_flags,
    attack_hints,
    deepfake,
    single_check,
    risk_band,
)
