"""decide: checks + evidence flags + a policy -> a Decision. Pure: no I/O, no clock, no Temporal.

Every rule in `policies.rules` yields caps; the action is the most restrictive cap. The step-up
budget is applied last: once spent, a cap that would ask for another capture becomes review,
because a person, not yet another capture, settles a session that keeps capturing badly.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies.loader import load_policy, parse_policy
from policies.model import Policy
from policies.rules import PERMISSIVENESS, RULES, SEVERITY, Cap, gather_facts, weighted_risk
from signgate.models import Action, CheckResult, Decision, RiskTier

__all__ = ["PERMISSIVENESS", "Policy", "decide", "load_policy", "parse_policy"]

STEP_UP_LIMIT_REACHED = "step_up_limit_reached"


def decide(
    policy: Policy,
    checks: Sequence[CheckResult],
    evidence_flags: Sequence[str] = (),
    step_ups_done: int = 0,
) -> Decision:
    facts = gather_facts(policy, checks, evidence_flags)
    caps = [cap for rule in RULES for cap in rule(policy, facts)]
    if step_ups_done >= policy.max_step_ups:
        caps = _step_up_spent(caps)
    action = min((cap.action for cap in caps), key=PERMISSIVENESS.__getitem__)
    score, complete = weighted_risk(policy, facts)
    return Decision(
        action=action,
        tier=_tier(action, caps),
        risk_score=score if complete else None,
        reasons=_reasons(action, caps),
        policy=policy.ref,
    )


def _step_up_spent(caps: list[Cap]) -> list[Cap]:
    if not any(c.action is Action.step_up for c in caps):
        return caps
    as_review = [
        Cap(Action.review, c.tier, c.reason) if c.action is Action.step_up else c for c in caps
    ]
    return [*as_review, Cap(Action.review, RiskTier.yellow, STEP_UP_LIMIT_REACHED)]


def _tier(action: Action, caps: list[Cap]) -> RiskTier:
    if action is Action.reject:
        return RiskTier.red
    if action is Action.accept:
        return RiskTier.green
    # A review that would override a red signal is red (the workflow asks four eyes for it).
    restricting = [c.tier for c in caps if c.action is not Action.accept]
    return max([RiskTier.yellow, *restricting], key=SEVERITY.__getitem__)


def _reasons(action: Action, caps: list[Cap]) -> list[str]:
    """The binding (most restrictive) reasons first, then every other restriction, in rule
    order; an accept names why it is acceptable. Never empty: the band rule always speaks."""
    if action is Action.accept:
        named = caps
    else:
        restricting = [c for c in caps if c.action is not Action.accept]
        named = sorted(restricting, key=lambda c: PERMISSIVENESS[c.action])  # stable
    return list(dict.fromkeys(c.reason for c in named))
