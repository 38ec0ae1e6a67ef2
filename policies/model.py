"""The shape of a policy file: every threshold and weight lives in TOML, none in code.

A `Policy` is what one TOML file says plus the sha256 of its exact bytes, so a decision can
name the file it was made under and an auditor can check it byte for byte.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signgate.models import SHA256_HEX, Action, CheckKind, PolicyRef, RiskTier

POLICY_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"

# Rules may only restrict: an `accept` cap would be a no-op, so files cannot say it.
CapAction = Literal["reject", "review", "step_up"]


class Strict(BaseModel):
    # extra="forbid": a misspelt threshold is an error, not a silently ignored default.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bands(Strict):
    """Weighted risk bands: accept <= accept_max < review <= review_max < reject."""

    accept_max: float = Field(ge=0.0, le=1.0)
    review_max: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not self.accept_max < self.review_max:
            raise ValueError("accept_max must be below review_max")
        return self


class SingleCheck(Strict):
    """One terrible check is never out-voted: risk >= review_at caps at review."""

    review_at: float = Field(ge=0.0, le=1.0)
    tier: RiskTier = RiskTier.red


class Deepfake(Strict):
    """Deepfake risk >= reject_at rejects, unless liveness and face_match are both strong
    (risk <= live_and_matching_max): then a person decides, at tier red."""

    reject_at: float = Field(ge=0.0, le=1.0)
    live_and_matching_max: float = Field(ge=0.0, le=1.0)


class HintRule(Strict):
    """A completed check carrying `hint` at confidence >= min_confidence caps at `action`."""

    hint: str = Field(min_length=1)
    action: CapAction
    reason: str = Field(min_length=1)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    kinds: list[CheckKind] | None = None  # None: any kind
    tier: RiskTier | None = None  # None: red for reject, yellow otherwise


class FlagRule(Strict):
    """An evidence flag raised by sealing caps at `action`."""

    flag: str = Field(min_length=1)
    action: CapAction
    reason: str = Field(min_length=1)
    tier: RiskTier | None = None


class Policy(Strict):
    id: str = Field(pattern=POLICY_ID)
    version: str = Field(min_length=1)
    description: str = ""
    sha256: str = Field(pattern=SHA256_HEX)  # set by the loader from the file bytes

    required_checks: list[CheckKind] = Field(min_length=1)
    max_step_ups: int = Field(ge=0)
    unknown_flag_action: CapAction = "review"
    weights: dict[CheckKind, float]
    bands: Bands
    single_check: SingleCheck
    deepfake: Deepfake
    hints: list[HintRule] = Field(default_factory=list)
    flags: list[FlagRule] = Field(default_factory=list)
    # Checks run before the others; a reject on them and the sealing flags alone skips
    # the rest (never an early accept: accepting needs every required check). Empty: all
    # checks run at once.
    cheap_first: list[CheckKind] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if len(set(self.required_checks)) != len(self.required_checks):
            raise ValueError("required_checks lists a kind twice")
        if any(not 0.0 <= w <= 1.0 for w in self.weights.values()):
            raise ValueError("weights must each be within 0..1")
        if not math.isclose(sum(self.weights.values()), 1.0, abs_tol=1e-9):
            raise ValueError("weights must sum to 1")
        required = set(self.required_checks)
        unrequired = [k.value for k, w in self.weights.items() if w > 0 and k not in required]
        if unrequired:
            # A weighted check that may be absent would leave the score uncomputable unnoticed.
            raise ValueError(f"weighted checks must be required: {', '.join(unrequired)}")
        flags = [f.flag for f in self.flags]
        if len(set(flags)) != len(flags):
            raise ValueError("flags lists a flag twice")
        return self

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(policy_id=self.id, version=self.version, sha256=self.sha256)

    def weight(self, kind: CheckKind) -> float:
        return self.weights.get(kind, 0.0)


def default_tier(action: Action) -> RiskTier:
    if action is Action.reject:
        return RiskTier.red
    if action is Action.accept:
        return RiskTier.green
    return RiskTier.yellow
