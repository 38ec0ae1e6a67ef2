"""The app API: create a session, upload evidence, submit a capture, poll, fetch the attestation."""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.auth import require
from gateway.errors import Refusal
from gateway.onboarding import CAPTURE_STAGES, Sessions, workflow_id
from gateway.state import Gateway, bind_session, gateway_of
from gateway.uploads import Inspection
from policies.experiments import Assignment, assign_policy, load_experiment
from policies.loader import load_policy
from signgate.api_keys import Caller
from signgate.errors import BadInput
from signgate.evidence import object_key_for
from signgate.evidence_s3 import S3EvidenceStore
from signgate.models import (
    ArtifactKind,
    ArtifactRef,
    EvidenceSubmission,
    Mode,
    OnboardingRequest,
    OnboardingStatus,
    ReviewerRole,
)
from signgate.outbound import check_callback_url
from signgate.settings import ApiKey

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

SESSION_ID = r"^[A-Za-z0-9_-]{8,64}$"
SessionId = Annotated[str, Path(pattern=SESSION_ID)]
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
AppKey = Annotated[Caller, Depends(require("app"))]
# App keys see their own tenant only (Sessions.authorize); staff keys see every tenant.
AnyKey = Annotated[Caller, Depends(require("app", "reviewer", "senior_reviewer", "ops", "admin"))]

_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_MAX_CONTENT_TYPE_CHARS = 127
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,128}")
# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = None
    subject_ref: str
    intent: str
    mode: Mode = Mode.enforce
    policy_id: str | None = None
    callback_url: str | None = None

    @field_validator("subject_ref")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        """An id is printable ASCII: no NUL, no bidi override, no look-alike letters, so the
        id a reviewer reads is the id the ledger holds (and a reviewer's own is spotted)."""
        if not _PRINTABLE_ASCII.fullmatch(value) or not value.strip():
            raise ValueError("subject_ref must be 1-128 printable ASCII characters")
        return value

    @field_validator("intent")
    @classmethod
    def _no_hidden_characters(cls, value: str) -> str:
        if any(unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in value):
            raise ValueError("intent must not contain control or formatting characters")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_only(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("callback_url must be an http(s) URL")
        return url


class SessionCreated(BaseModel):
    session_id: str
    workflow_id: str
    stage: str
    challenge_nonce: str


class SessionStage(BaseModel):
    session_id: str
    stage: str


class Attestation(BaseModel):
    attestation: str


def _policy_and_mode(body: CreateSession, tenant_id: str, session_id: str) -> tuple[str, Mode]:
    """What the app asked for wins; whatever it left out, the tenant's experiment decides.

    An explicit `policy_id` must name a policy that exists (422 `unknown_policy`), so a typo
    is refused here instead of failing the session at its first decision.
    """
    experiment = load_experiment(tenant_id)
    if body.policy_id is not None:
        try:
            load_policy(body.policy_id)
        except BadInput as err:
            raise Refusal(422, "unknown_policy", err.message) from err
        # The app chose the policy, so no split applies; the tenant-wide mode still does.
        assigned = Assignment(policy_id=body.policy_id, mode=experiment.mode)
    else:
        assigned = assign_policy(session_id, tenant_id, experiment.splits)
    mode = body.mode if "mode" in body.model_fields_set else assigned.mode
    return assigned.policy_id, mode


def _session_id(body: CreateSession, key: ApiKey, idempotency_key: str | None) -> str:
    """The app's own id, else one derived from the create's Idempotency-Key (scoped to the
    caller, as the key is), else a random one. Derived, a create retried after a 5xx (whose
    answer is not saved for replay, though its workflow may have started) starts the same
    workflow again, which finds the running session instead of orphaning it."""
    if body.session_id:
        return body.session_id
    if idempotency_key:
        scoped = f"{key.tenant_id}/{key.principal}/{idempotency_key}".encode()
        return hashlib.sha256(scoped).hexdigest()[:32]
    return uuid.uuid4().hex


def _onboarding_request(
    body: CreateSession,
    key: ApiKey,
    gateway: Gateway,
    reviewers: dict[str, ReviewerRole] | None = None,
    idempotency_key: str | None = None,
) -> OnboardingRequest:
    """The workflow input. Without a roster nobody may review (the safe default)."""
    settings = gateway.settings
    session_id = _session_id(body, key, idempotency_key)
    policy_id, mode = _policy_and_mode(body, key.tenant_id, session_id)
    try:
        return OnboardingRequest(
            session_id=session_id,
            tenant_id=key.tenant_id,
            subject_ref=body.subject_ref,
            intent=body.intent,
            mode=mode,
            policy_id=policy_id,
            callback_url=body.callback_url,
            timeouts=settings.timeouts,
            reviewers=reviewers or {},
        )
    except ValidationError as exc:
        # Same 422 shape as a body FastAPI refused; the input itself is never echoed.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from exc


@router.post("", status_code=201, summary="Start an onboarding session. Roles: app")
async def create_session(
    body: CreateSession,
    key: AppKey,
    gateway: GatewayDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SessionCreated:
    if body.callback_url is not None:  # SSRF guard: 422 callback_url_not_allowed
        check_callback_url(body.callback_url, gateway.settings.callback_allowed_hosts)
    # Who may review is fixed at start (the workflow's validator checks against it).
    reviewers = await asyncio.to_thread(gateway.keys.reviewer_roster)
    request = _onboarding_request(body, key, gateway, reviewers, idempotency_key)
    bind_session(request.session_id)
    await gateway.sessions.start(request)
    status = await gateway.sessions.status(request.session_id, wait_for_challenge=True)
    return SessionCreated(
        session_id=request.session_id,
        workflow_id=workflow_id(request.session_id),
        stage=status.stage.value,
        challenge_nonce=status.challenge_nonce,
    )


async def _awaiting_capture(sessions: Sessions, key: Caller, session_id: str) -> None:
    await sessions.authorize(key, session_id)
    status = await sessions.status(session_id)
    if status.stage not in CAPTURE_STAGES:
        raise Refusal(
            409,
            "session_not_awaiting_capture",
            f"session is {status.stage.value}, not awaiting a capture",
        )


def _expected_sha256(header: str | None) -> str:
    if header is None or not header.strip():
        raise Refusal(
            422, "evidence_hash_missing", "send X-Content-SHA256: <hex SHA-256 of the body>"
        )
    if not _SHA256_HEX.match(header.strip()):
        raise Refusal(422, "evidence_hash_invalid", "X-Content-SHA256 must be 64 hex characters")
    return header.strip().lower()


def _refuse_oversize(kind: ArtifactKind, content_length: str | None, max_bytes: int) -> None:
    """Refuse a declared oversize body before reading a byte of it."""
    if content_length is None:
        return  # chunked: the store enforces the cap while streaming
    try:
        declared = int(content_length)
    except ValueError:
        raise Refusal(400, "content_length_invalid", "Content-Length is not a number") from None
    if declared > max_bytes:
        raise Refusal(413, "evidence_too_large", f"{kind.value} is limited to {max_bytes} bytes")


@router.put(
    "/{session_id}/evidence/{kind}",
    status_code=201,
    summary="Upload one evidence artifact (streamed, sniffed, capped). Roles: app",
)
async def upload_evidence(
    session_id: SessionId,
    kind: ArtifactKind,
    request: Request,
    key: AppKey,
    gateway: GatewayDep,
    x_content_sha256: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header()] = None,
    content_type: Annotated[str, Header()] = "application/octet-stream",
) -> ArtifactRef:
    bind_session(session_id)
    expected = _expected_sha256(x_content_sha256)
    max_bytes = gateway.settings.max_upload_bytes[kind]
    _refuse_oversize(kind, content_length, max_bytes)
    await _awaiting_capture(gateway.sessions, key, session_id)
    inspection = Inspection(kind, content_type)
    ref = await gateway.store.put_stream(
        kind,
        # Checked while it streams: a refusal raised here makes the store discard it.
        inspection.stream(request.stream()),
        expected_sha256=expected,
        max_bytes=max_bytes,
        content_type=content_type[:_MAX_CONTENT_TYPE_CHARS],
        session_id=session_id,
    )
    # The ref names what the bytes are, not what the client called them.
    return ref.model_copy(update={"content_type": inspection.media_type or ref.content_type})


@router.post("/{session_id}/submit", status_code=202, summary="Submit a capture round. Roles: app")
async def submit_capture(
    session_id: SessionId,
    submission: Annotated[EvidenceSubmission, Body()],
    key: AppKey,
    gateway: GatewayDep,
) -> SessionStage:
    bind_session(session_id)
    await _awaiting_capture(gateway.sessions, key, session_id)
    for ref in submission.artifacts:
        # Content-addressed: the key names the hash, so "stored under this key" is
        # "stored with this hash". seal_evidence re-hashes the bytes before any check.
        if ref.object_key != object_key_for(ref.sha256, session_id) or not gateway.store.exists(
            ref.object_key
        ):
            raise Refusal(
                422,
                "evidence_missing",
                f"{ref.kind.value} artifact {ref.sha256[:12]}... is not in the evidence store",
            )
    if isinstance(gateway.store, S3EvidenceStore):
        for ref in submission.artifacts:
            # A direct upload went to S3 without passing the gateway's content checks: it
            # gets them now, on its way into the locked bucket, before anything is signalled.
            await gateway.store.ingest_staged(ref, Inspection(ref.kind, ref.content_type).stream)
    await gateway.sessions.submit_evidence(session_id, submission)
    status = await gateway.sessions.status(session_id)
    return SessionStage(session_id=session_id, stage=status.stage.value)


@router.get(
    "/{session_id}",
    summary="Session status. Roles: app (own tenant), reviewer, senior_reviewer, ops, admin",
)
async def session_status(
    session_id: SessionId, key: AnyKey, gateway: GatewayDep
) -> OnboardingStatus:
    bind_session(session_id)
    await gateway.sessions.authorize(key, session_id)
    return await gateway.sessions.status(session_id)


@router.get("/{session_id}/attestation", summary="The signing attestation. Roles: app")
async def attestation(session_id: SessionId, key: AppKey, gateway: GatewayDep) -> Attestation:
    bind_session(session_id)
    await gateway.sessions.authorize(key, session_id)
    status = await gateway.sessions.status(session_id)
    if status.attestation is None:
        raise Refusal(
            409, "not_unlocked", f"signing is not unlocked (session is {status.stage.value})"
        )
    return Attestation(attestation=status.attestation)
