"""Every side effect of the saga lives here, as thin adapters over `signgate` core code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.checks import CheckActivities
from activities.decision import DecisionActivities
from activities.deps import ActivityDeps
from activities.evidence import EvidenceActivities
from activities.ledger import LedgerActivities
from activities.notify import NotifyActivities
from activities.signing import SigningActivities


def all_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """The activities one onboarding worker registers, bound to one set of deps."""
    checks = CheckActivities(deps)
    evidence = EvidenceActivities(deps)
    ledger = LedgerActivities(deps)
    signing = SigningActivities(deps)
    return [
        evidence.seal_evidence,
        checks.check_liveness,
        checks.check_deepfake,
        checks.check_face_match,
        checks.check_device,
        checks.check_provenance,
        checks.plan_checks,
        DecisionActivities(deps).decide,
        ledger.append_ledger,
        ledger.commit_decision,
        signing.unlock_signing,
        NotifyActivities(deps).deliver_app_event,
    ]
