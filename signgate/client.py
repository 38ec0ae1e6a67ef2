"""A small typed client for the gateway, for onboarding apps, reviewers and the demo.

Speaks the same pydantic models as the server, so an app never hand-parses JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import httpx
from pydantic import BaseModel

from signgate.attestation import AttestationInvalid, verify_attestation
from signgate.errors import SigngateError
from signgate.ledger import Ledger
from signgate.models import (
    TERMINAL_STAGES,
    Action,
    ArtifactKind,
    ArtifactRef,
    AttestationClaims,
    CaptureMetadata,
    EvidenceSubmission,
    Mode,
    OnboardingStatus,
    ReviewOutcome,
    Stage,
)
from signgate.signer import KeyRing
from signgate.verification import verify_attestation_with_ledger

# A decision is made once the session is final, or once it waits for a person.
DECIDED_STAGES = frozenset({*TERMINAL_STAGES, Stage.awaiting_review, Stage.escalated})


class SessionCreated(BaseModel):
    """`POST /v1/sessions`: the session, its workflow and the capture challenge to echo."""

    session_id: str
    workflow_id: str
    stage: Stage
    challenge_nonce: str


class GatewayError(SigngateError):
    """The gateway refused a call; `reason` is its reason code, `status_code` the HTTP code."""

    def __init__(self, status_code: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} {reason}: {message}", reason=reason)
        self.status_code = status_code


def _retry_after_s(response: httpx.Response, cap_s: float = 10.0) -> float:
    try:
        return min(cap_s, max(0.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


class GatewayClient:
    RATE_LIMIT_RETRIES = 3

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout_s
        )

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, url: str, idempotency_key: str | None = None, **kwargs: Any
    ) -> Any:
        """One API call. Every POST carries an Idempotency-Key (`idempotency_key`, or a
        fresh one), reused on this call's own retries, so a retry after a lost response
        never acts twice. A 429 is retried after its Retry-After (capped), a bounded
        number of times."""
        if method == "POST":
            key = idempotency_key or uuid.uuid4().hex
            headers = {"Idempotency-Key": key, **kwargs.pop("headers", {})}
            kwargs["headers"] = headers
        for attempt in range(self.RATE_LIMIT_RETRIES + 1):
            response = await self._http.request(method, url, **kwargs)
            if response.status_code != 429 or attempt == self.RATE_LIMIT_RETRIES:
                break
            await asyncio.sleep(_retry_after_s(response))
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                reason, message = error["reason"], error["message"]
            except (ValueError, KeyError, TypeError):
                reason, message = "http_error", response.text[:200]
            raise GatewayError(response.status_code, reason, message)
        return response.json()

    async def create_session(
        self, subject_ref: str, intent: str, idempotency_key: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Start a session. An app that retries a create whose answer it lost passes the
        same `idempotency_key` (and body) each time: the gateway then answers with the
        session it already started instead of starting another."""
        body = {"subject_ref": subject_ref, "intent": intent, **extra}
        result: dict[str, Any] = await self._call(
            "POST", "/v1/sessions", idempotency_key=idempotency_key, json=body
        )
        return result

    async def start_session(
        self, subject_ref: str, intent: str, idempotency_key: str | None = None, **extra: Any
    ) -> SessionCreated:
        """Start (or, with the same `session_id` or `idempotency_key`, find again) a
        session; typed."""
        return SessionCreated.model_validate(
            await self.create_session(subject_ref, intent, idempotency_key, **extra)
        )

    async def upload(
        self, session_id: str, kind: ArtifactKind, data: bytes, content_type: str
    ) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        body = await self._call(
            "PUT",
            f"/v1/sessions/{session_id}/evidence/{kind.value}",
            content=data,
            headers={"X-Content-SHA256": digest, "Content-Type": content_type},
        )
        return ArtifactRef.model_validate(body)

    async def submit(
        self, session_id: str, artifacts: list[ArtifactRef], capture: CaptureMetadata
    ) -> None:
        submission = EvidenceSubmission(artifacts=artifacts, capture=capture)
        await self._call(
            "POST", f"/v1/sessions/{session_id}/submit", json=submission.model_dump(mode="json")
        )

    async def status(self, session_id: str) -> OnboardingStatus:
        return OnboardingStatus.model_validate(
            await self._call("GET", f"/v1/sessions/{session_id}")
        )

    async def wait_for(
        self, session_id: str, stages: set[Stage] | None = None, timeout_s: float = 60.0
    ) -> OnboardingStatus:
        """Poll until the session reaches one of `stages` (default: any terminal stage)."""
        wanted = stages or set(TERMINAL_STAGES)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            status = await self.status(session_id)
            if status.stage in wanted:
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"session {session_id} stuck at {status.stage.value}")
            await asyncio.sleep(0.2)

    async def review(self, session_id: str, approve: bool, reason: str) -> ReviewOutcome:
        return await self._review(session_id, {"approve": approve, "reason": reason})

    async def request_step_up(self, session_id: str, reason: str) -> ReviewOutcome:
        """Ask for a fresh capture instead of a verdict (once per session; a second one is
        refused with `step_up_limit_reached`)."""
        return await self._review(session_id, {"step_up": True, "reason": reason})

    async def _review(self, session_id: str, body: dict[str, Any]) -> ReviewOutcome:
        return ReviewOutcome.model_validate(
            await self._call("POST", f"/v1/sessions/{session_id}/review", json=body)
        )

    async def review_queue(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/v1/reviews")
        return result

    async def attestation(self, session_id: str) -> str:
        body = await self._call("GET", f"/v1/sessions/{session_id}/attestation")
        return str(body["attestation"])

    async def wait_for_decision(
        self,
        session_id: str,
        *,
        include_review: bool = False,
        timeout_s: float = 120.0,
        poll_s: float = 0.2,
        max_poll_s: float = 2.0,
    ) -> OnboardingStatus:
        """Poll (backing off from `poll_s` to `max_poll_s`) until the session is final, or,
        with `include_review`, also until it waits for a reviewer. `TimeoutError` after
        `timeout_s`: the caller decides what a slow session means, never this loop."""
        wanted = DECIDED_STAGES if include_review else TERMINAL_STAGES
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = poll_s
        while True:
            status = await self.status(session_id)
            if status.stage in wanted:
                return status
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"session {session_id} not decided within {timeout_s:g} s "
                    f"(stage {status.stage.value})"
                )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, max_poll_s)

    async def verified_attestation(
        self,
        session_id: str,
        keyring: KeyRing,
        *,
        ledger: Ledger | None = None,
        now: int | None = None,
    ) -> AttestationClaims:
        """Fetch the attestation and honour it only if it gates signing for this session.

        Signature by a key in `keyring` (our public keys, e.g. `KeyRing.from_pems`), not
        expired, for `session_id`, mode `enforce` and decision `accept`; with `ledger`,
        also backed by that session's committed decision entry. `AttestationInvalid`
        (with its reason code) otherwise.
        """
        token = await self.attestation(session_id)
        if ledger is not None:
            claims = verify_attestation_with_ledger(token, keyring, ledger, now=now)
        else:
            claims = verify_attestation(token, keyring, now=now)
        if claims.sid != session_id:
            raise AttestationInvalid(
                f"attestation is for session {claims.sid}, not {session_id}",
                reason="attestation_wrong_session",
            )
        if claims.mode is not Mode.enforce or claims.decision is not Action.accept:
            raise AttestationInvalid(
                f"attestation does not gate signing (mode {claims.mode.value}, "
                f"decision {claims.decision.value})",
                reason="attestation_not_enforced_accept",
            )
        return claims
