"""The vocabulary of signgate: every boundary (HTTP, Temporal payloads, ledger) speaks these.

Raw media never appears here: artifacts travel as object keys, hashes and sizes only, so a
Temporal history or a ledger entry can be shown to an auditor without leaking a face.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHA256_HEX = r"^[0-9a-f]{64}$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckKind(StrEnum):
    liveness = "liveness"
    deepfake = "deepfake"
    face_match = "face_match"
    device = "device"
    provenance = "provenance"


class ArtifactKind(StrEnum):
    selfie = "selfie"
    liveness_video = "liveness_video"
    id_front = "id_front"
    id_back = "id_back"
    device_signals = "device_signals"


class Mode(StrEnum):
    enforce = "enforce"
    shadow = "shadow"


class Action(StrEnum):
    accept = "accept"
    step_up = "step_up"
    review = "review"
    reject = "reject"


class RiskTier(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class Stage(StrEnum):
    """Where a session stands; also the `OnboardingStatus` search attribute value."""

    awaiting_capture = "awaiting_capture"
    sealing = "sealing"
    checking = "checking"
    deciding = "deciding"
    awaiting_step_up = "awaiting_step_up"
    awaiting_review = "awaiting_review"
    escalated = "escalated"
    committing = "committing"
    unlocking = "unlocking"
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"


TERMINAL_STAGES = frozenset({Stage.accepted, Stage.rejected, Stage.expired})


class ReviewerRole(StrEnum):
    reviewer = "reviewer"
    senior_reviewer = "senior_reviewer"


# --------------------------------------------------------------------------- evidence


class ArtifactRef(Frozen):
    """A stored, content-addressed artifact: what Temporal and the ledger see of the media."""

    kind: ArtifactKind
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    content_type: str
    object_key: str


class CaptureMetadata(Frozen):
    """What the capturing app tells us about the capture (no PII).

    `challenge_nonce` must echo the challenge the workflow issued, proving the capture was
    made for this session and not replayed from another. `scenario` selects a deterministic
    outcome in the bundled vendor sandbox (a test/demo tool) and is ignored by real vendors.
    """

    challenge_nonce: str
    captured_at: datetime | None = None
    scenario: str | None = None
    device_signals: dict[str, str | int | float | bool] = Field(default_factory=dict)


class EvidenceSubmission(Frozen):
    """Signal `evidence_submitted`: the artifacts of one capture round."""

    artifacts: list[ArtifactRef] = Field(min_length=1)
    capture: CaptureMetadata


class SealRequest(Frozen):
    session_id: str
    tenant_id: str
    round: int = Field(ge=1)
    submission: EvidenceSubmission
    expected_nonce: str


class SealedEvidence(Frozen):
    """The sealed record of one capture round, stamped by the server's key."""

    session_id: str
    round: int
    artifacts: list[ArtifactRef]
    merkle_root: str = Field(pattern=SHA256_HEX)
    stamp_key_id: str
    stamp_signature_b64: str
    flags: list[str] = Field(default_factory=list)  # e.g. replayed_capture, challenge_mismatch
    ledger: LedgerReceipt


# --------------------------------------------------------------------------- checks


class CheckStatus(StrEnum):
    completed = "completed"
    unavailable = "unavailable"  # vendor down, webhook never came, timed out
    error = "error"  # vendor refused the request or answered garbage


class CheckResult(Frozen):
    """One check's outcome. `risk_score` is 0..1 risk (1 = certainly an attack / mismatch)."""

    kind: CheckKind
    status: CheckStatus
    risk_score: float | None = Field(default=None, ge=0.0, le=1.0)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    attack_hints: list[str] = Field(default_factory=list)
    provider: str
    model_version: str = "unknown"
    latency_ms: int = Field(default=0, ge=0)
    raw_response_sha256: str | None = None
    explanations: list[str] = Field(default_factory=list)
    reason: str | None = None  # reason code when not completed (vendor_timeout, ...)


class CheckRequest(Frozen):
    session_id: str
    tenant_id: str
    round: int
    kind: CheckKind
    artifacts: list[ArtifactRef]
    capture: CaptureMetadata
    merkle_root: str
    # The round's active-liveness challenge (moves in order); empty: passive only.
    motion_challenge: list[str] = Field(default_factory=list)


class CheckOutcome(Frozen):
    """Completed(result) or Pending(vendor_ref): a pending check waits for `vendor_result`."""

    state: Literal["completed", "pending"]
    result: CheckResult | None = None
    vendor_ref: str | None = None

    @classmethod
    def completed(cls, result: CheckResult) -> CheckOutcome:
        return cls(state="completed", result=result)

    @classmethod
    def pending(cls, vendor_ref: str) -> CheckOutcome:
        return cls(state="pending", vendor_ref=vendor_ref)


class VendorResult(Frozen):
    """Signal `vendor_result`: a verified, deduplicated vendor webhook for a pending check."""

    vendor_ref: str
    event_id: str
    result: CheckResult


# --------------------------------------------------------------------------- policy + decision


class PolicyRef(Frozen):
    policy_id: str
    version: str
    sha256: str = Field(pattern=SHA256_HEX)


class Decision(Frozen):
    action: Action
    tier: RiskTier
    risk_score: float | None = Field(default=None, ge=0.0, le=1.0)
    reasons: list[str]
    policy: PolicyRef
    decided_by: str = "policy"  # "policy" or "reviewer:<id>[,reviewer:<id>]"


class DecideRequest(Frozen):
    session_id: str
    policy_id: str | None = None
    checks: list[CheckResult]
    evidence_flags: list[str] = Field(default_factory=list)
    step_ups_done: int = 0


class CheckPlanRequest(Frozen):
    """Activity `plan_checks`: which checks the session's policy wants run first."""

    policy_id: str | None = None


class CheckPlan(Frozen):
    """Kinds to run first; when the policy rejects on them (and the sealing flags) alone,
    the other checks are skipped. Empty: every check at once."""

    cheap_first: list[CheckKind] = Field(default_factory=list)


# --------------------------------------------------------------------------- review


class ReviewInput(Frozen):
    """Update `review`: a reviewer's decision. The gateway authenticates the reviewer.

    `step_up` asks for a fresh capture instead of a verdict (then `approve` is False): the
    saga issues a new challenge and decides again on the new evidence.
    """

    reviewer_id: str = Field(min_length=1)
    role: ReviewerRole
    approve: bool
    reason: str = Field(min_length=3, max_length=2000)
    step_up: bool = False

    @model_validator(mode="after")
    def _step_up_is_no_approval(self) -> ReviewInput:
        if self.step_up and self.approve:
            raise ValueError("a step-up request is not an approval: send approve=false")
        return self


class ReviewRecord(Frozen):
    """A reviewer's action as the ledger keeps it: a verdict, or (`step_up`) a request
    for a fresh capture, which is neither an approval nor a rejection."""

    reviewer_id: str
    role: ReviewerRole
    approve: bool
    reason: str
    at: datetime
    ledger: LedgerReceipt | None = None
    step_up: bool = False


class ReviewOutcome(Frozen):
    """What the `review` update returns to the reviewer."""

    accepted_review: bool
    decision_final: bool
    approvals_needed: int
    step_up_requested: bool = False


# --------------------------------------------------------------------------- ledger + unlock


class LedgerReceipt(Frozen):
    seq: int = Field(ge=1)
    entry_type: str
    entry_hash: str = Field(pattern=SHA256_HEX)
    key_id: str


class LedgerEntry(Frozen):
    seq: int
    session_id: str
    entry_type: str
    idempotency_key: str
    body: dict[str, Any]
    prev_hash: str
    entry_hash: str
    key_id: str
    signature_b64: str
    created_at: str


class LedgerAppend(Frozen):
    """Activity input to append one entry; idempotent on `idempotency_key`."""

    session_id: str
    entry_type: str
    idempotency_key: str
    body: dict[str, Any]


class CommitRequest(Frozen):
    session_id: str
    tenant_id: str
    mode: Mode
    decision: Decision
    checks: list[CheckResult]
    merkle_roots: list[str]
    reviews: list[ReviewRecord] = Field(default_factory=list)


class UnlockRequest(Frozen):
    session_id: str
    mode: Mode = Mode.enforce
    tenant_id: str
    subject_ref: str
    intent: str
    decision: Decision
    decision_receipt: LedgerReceipt
    merkle_root: str
    callback_url: str | None = None


class AttestationClaims(Frozen):
    """The claims of the signing attestation (compact JWS, EdDSA)."""

    iss: str = "signgate"
    # "shadow": signing was NOT gated; `decision` is only what the policy would have done.
    # An app that gates on this token must require mode == "enforce" and decision == accept.
    mode: Mode = Mode.enforce
    sub: str  # the app's opaque subject reference, never a name
    sid: str  # session id
    intent: str
    decision: Action
    tier: RiskTier
    ledger_seq: int
    ledger_entry_hash: str
    evidence_merkle_root: str
    policy_id: str
    policy_version: str
    policy_sha256: str
    iat: int
    exp: int
    jti: str


class Unlocked(Frozen):
    attestation: str
    claims: AttestationClaims
    ledger: LedgerReceipt


# --------------------------------------------------------------------------- workflow I/O


class SessionTimeouts(Frozen):
    capture_s: int = Field(default=30 * 60, gt=0)
    vendor_webhook_s: int = Field(default=10 * 60, gt=0)
    step_up_s: int = Field(default=30 * 60, gt=0)
    review_sla_s: int = Field(default=4 * 3600, gt=0)
    review_final_s: int = Field(default=48 * 3600, gt=0)


class OnboardingRequest(Frozen):
    session_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    tenant_id: str = Field(min_length=1, max_length=64)
    subject_ref: str = Field(min_length=1, max_length=128)
    intent: str = Field(min_length=1, max_length=256)
    mode: Mode = Mode.enforce
    policy_id: str | None = None
    callback_url: str | None = None
    timeouts: SessionTimeouts = Field(default_factory=SessionTimeouts)
    # Who may review, fixed at start so the validator is deterministic on replay.
    reviewers: dict[str, ReviewerRole] = Field(default_factory=dict)


class TimelineEvent(Frozen):
    at: datetime
    stage: Stage
    note: str = ""


class OnboardingStatus(Frozen):
    """Query `status`."""

    session_id: str
    stage: Stage
    challenge_nonce: str
    round: int
    pending: list[str]
    checks: list[CheckResult]
    decision: Decision | None
    reviews: list[ReviewRecord]
    timeline: list[TimelineEvent]
    attestation: str | None = None
    decision_receipt: LedgerReceipt | None = None
    # Moves the app must ask for in the liveness video, in order (empty: none asked).
    motion_challenge: list[str] = Field(default_factory=list)


class OnboardingResult(Frozen):
    session_id: str
    stage: Stage
    decision: Decision | None
    decision_receipt: LedgerReceipt | None
    attestation: str | None
    merkle_roots: list[str]


SealedEvidence.model_rebuild()
ReviewRecord.model_rebuild()


class AppEventType(StrEnum):
    """What an onboarding app is told about its session, at its callback URL."""

    decision = "decision"
    step_up_required = "step_up_required"
    unlocked = "unlocked"
    expired = "expired"


class AppEvent(Frozen):
    """One status event for the app. `event_id` is fixed per session and event (never a
    random id), so every retry of a delivery carries the same id and the app dedupes it."""

    event_id: str
    type: AppEventType
    session_id: str
    tenant_id: str
    occurred_at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class AppEventDelivery(Frozen):
    callback_url: str
    event: AppEvent


class DeliveryOutcome(Frozen):
    """How a delivery ended: `delivered`, or given up with the reason code of the last try."""

    event_id: str
    delivered: bool
    attempts: int | None = None  # unknown when given up: see the history (ops show)
    status_code: int | None = None
    reason: str | None = None
