"""The generic detection vendor API: what signgate sends a vendor and what it accepts back.

One HTTP shape for every detection vendor; the bundled sandbox implements it and a real
vendor gets an adapter that speaks it (or its own API mapped onto these models).

Submit a check::

    POST {vendor}/v1/checks
    Authorization: Bearer <api key>
    Content-Type: application/json

    VendorCheckRequest   {check, reference, artifacts: [VendorArtifact], scenario, callback_url}

``reference`` is ``"<session_id>:<round>:<kind>"`` (see `make_reference`). Artifacts travel as
hashes and sizes only, never media: the vendor fetches nothing through this call.

Answers:

- ``200`` ``VendorCompleted {"status": "completed", "result": VendorCheckPayload}``
- ``202`` ``VendorPending {"status": "pending", "vendor_ref": "..."}``, and later the vendor
  ``POST``\\s a `VendorWebhook` to ``callback_url`` with an ``X-Signature`` header (see
  `signgate.webhooks`; the vendor signs with the first of ``settings.webhook_secrets``).
  A delivery may be retried: ``event_id`` stays the same, so the receiver dedupes on it.
- ``401`` wrong or absent key; other ``4xx`` a request the vendor will never accept;
  ``5xx`` the vendor is down (retry).

``risk_score`` is 0..1 RISK (1 = certainly an attack or a mismatch), ``confidence`` 0..1 is how
sure the vendor is of that score. Inbound models ignore fields they do not know, so a vendor
adding a field does not send every session to manual review; outbound ones forbid extras.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from signgate.errors import BadInput
from signgate.models import (
    SHA256_HEX,
    ArtifactKind,
    ArtifactRef,
    CheckKind,
    CheckResult,
    CheckStatus,
    Frozen,
)

CHECKS_PATH = "/v1/checks"


class _Inbound(BaseModel):
    """What a vendor sends: frozen like `Frozen`, but tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class VendorArtifact(Frozen):
    """An artifact as the vendor sees it: its hash and size, not its object key or bytes."""

    kind: ArtifactKind
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    content_type: str

    @classmethod
    def of(cls, ref: ArtifactRef) -> VendorArtifact:
        return cls(
            kind=ref.kind,
            sha256=ref.sha256,
            size_bytes=ref.size_bytes,
            content_type=ref.content_type,
        )


class VendorCheckRequest(Frozen):
    check: CheckKind
    reference: str = Field(min_length=1, max_length=256)
    artifacts: list[VendorArtifact]
    scenario: str | None = None  # sandbox only: picks a deterministic outcome
    callback_url: str | None = None


class VendorCheckPayload(_Inbound):
    check: CheckKind
    risk_score: float = Field(ge=0.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    attack_hints: list[str] = Field(default_factory=list)
    model_version: str = Field(min_length=1)
    explanations: list[str] = Field(default_factory=list)


class VendorCompleted(_Inbound):
    status: Literal["completed"]
    result: VendorCheckPayload


class VendorPending(_Inbound):
    status: Literal["pending"]
    vendor_ref: str = Field(min_length=1)


VendorCheckResponse = Annotated[VendorCompleted | VendorPending, Field(discriminator="status")]
vendor_check_response = TypeAdapter[VendorCompleted | VendorPending](VendorCheckResponse)


class VendorWebhook(_Inbound):
    """The body of the webhook that completes a pending check."""

    event_id: str = Field(min_length=1, max_length=128)
    vendor_ref: str = Field(min_length=1)
    reference: str = Field(min_length=1, max_length=256)
    check: CheckKind
    completed_at: int  # unix seconds
    result: VendorCheckPayload


def make_reference(session_id: str, round: int, kind: CheckKind) -> str:
    """``"<session_id>:<round>:<kind>"``: session ids never hold a colon (see OnboardingRequest)."""
    return f"{session_id}:{round}:{kind.value}"


_CHECK_KINDS = frozenset(kind.value for kind in CheckKind)


def session_id_from_reference(reference: str) -> str:
    parts = reference.split(":")
    if (
        len(parts) != 3
        or not parts[0]
        or not (parts[1].isascii() and parts[1].isdigit())
        or parts[2] not in _CHECK_KINDS
    ):
        raise BadInput(
            f"reference {reference[:80]!r} is not <session_id>:<round>:<kind>",
            reason="vendor_reference_invalid",
        )
    return parts[0]


def parse_vendor_webhook(body: bytes) -> VendorWebhook:
    try:
        return VendorWebhook.model_validate_json(body)
    except ValidationError as exc:
        raise BadInput(
            f"webhook body is not a VendorWebhook ({exc.error_count()} errors)",
            reason="webhook_body_invalid",
        ) from exc


def to_check_result(
    payload: VendorCheckPayload, provider: str, latency_ms: int, raw_sha256: str
) -> CheckResult:
    return CheckResult(
        kind=payload.check,
        status=CheckStatus.completed,
        risk_score=payload.risk_score,
        confidence=payload.confidence,
        attack_hints=list(payload.attack_hints),
        provider=provider,
        model_version=payload.model_version,
        latency_ms=latency_ms,
        raw_response_sha256=raw_sha256,
        explanations=list(payload.explanations),
    )
