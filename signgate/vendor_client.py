"""The httpx adapter for a detection vendor speaking the generic API of `signgate.vendor_api`.

It turns one `CheckRequest` into a `CheckOutcome` or an error whose class says what the caller
should do: a `Fault` (`VendorUnavailable`, `VendorBadResponse`) is worth retrying and then
fails safe to manual review; a `BadInput` (`VendorRejected`) will fail the same way again.
A score only ever comes from a validated vendor answer: every failure is an exception.
"""

from __future__ import annotations

import hashlib
import time
from types import TracebackType
from typing import Self

import httpx
from opentelemetry import trace
from pydantic import ValidationError

from signgate.errors import BadInput, Fault
from signgate.models import CheckKind, CheckOutcome, CheckRequest
from signgate.tracing import instrument_httpx_client
from signgate.vendor_api import (
    CHECKS_PATH,
    VendorArtifact,
    VendorCheckRequest,
    VendorCompleted,
    VendorPending,
    make_reference,
    to_check_result,
    vendor_check_response,
)

_tracer = trace.get_tracer(__name__)

# 4xx that say "not now" rather than "never": retry them like a 5xx.
_TRANSIENT_4XX = frozenset({408, 425, 429})


class VendorUnavailable(Fault):
    """The vendor could not be reached, timed out or answered 5xx: retry."""

    reason = "vendor_unavailable"


class VendorBadResponse(Fault):
    """The vendor answered something that is not a valid answer: retry, it may be transient."""

    reason = "vendor_bad_response"


class VendorRejected(BadInput):
    """The vendor refused the request (4xx: bad key, bad request): retrying will not help."""

    reason = "vendor_rejected"


class VendorClient:
    """One vendor, one connection pool. Use as ``async with VendorClient(...) as vendor:``."""

    def __init__(
        self, base_url: str, api_key: str, timeout_s: float, provider: str = "sandbox"
    ) -> None:
        if not api_key.strip():
            raise ValueError(f"no API key configured for vendor {provider!r}")
        self.provider = provider
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
            follow_redirects=False,
        )
        # A client span per vendor call, under the activity's span; `traceparent` on the wire.
        instrument_httpx_client(self._http)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit_check(self, req: CheckRequest, callback_url: str | None) -> CheckOutcome:
        body = VendorCheckRequest(
            check=req.kind,
            reference=make_reference(req.session_id, req.round, req.kind),
            artifacts=[VendorArtifact.of(ref) for ref in req.artifacts],
            scenario=req.capture.scenario,
            callback_url=callback_url,
        )
        with _tracer.start_as_current_span("vendor.submit_check") as span:
            span.set_attribute("signgate.session_id", req.session_id)
            span.set_attribute("signgate.check", req.kind.value)
            span.set_attribute("signgate.provider", self.provider)
            started = time.perf_counter()
            try:
                response = await self._http.post(
                    CHECKS_PATH,
                    content=body.model_dump_json(),
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TimeoutException as exc:
                raise VendorUnavailable(
                    f"{self.provider} did not answer within {self.timeout_s}s"
                ) from exc
            except httpx.TransportError as exc:
                raise VendorUnavailable(
                    f"{self.provider} unreachable: {type(exc).__name__}: {exc}"
                ) from exc
            except httpx.DecodingError as exc:
                raise VendorBadResponse(f"{self.provider} sent an undecodable body") from exc
            latency_ms = round((time.perf_counter() - started) * 1000)
            span.set_attribute("http.response.status_code", response.status_code)
            return self._outcome(req.kind, response, latency_ms)

    def _outcome(self, kind: CheckKind, response: httpx.Response, latency_ms: int) -> CheckOutcome:
        status = response.status_code
        if status >= 500 or status in _TRANSIENT_4XX:
            raise VendorUnavailable(f"{self.provider} answered HTTP {status}")
        if status >= 400:
            raise VendorRejected(
                f"{self.provider} refused the {kind.value} check: HTTP {status} "
                f"{response.text[:200]!r}"
            )
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if status not in (200, 202) or media_type != "application/json":
            raise VendorBadResponse(
                f"{self.provider} answered HTTP {status} {media_type or 'without content type'}"
            )
        try:
            answer = vendor_check_response.validate_json(response.content)
        except ValidationError as exc:
            raise VendorBadResponse(
                f"{self.provider} answer is not a check response ({exc.error_count()} errors)"
            ) from exc
        if status == 202 and isinstance(answer, VendorPending):
            return CheckOutcome.pending(answer.vendor_ref)
        if status == 200 and isinstance(answer, VendorCompleted):
            if answer.result.check != kind:
                raise VendorBadResponse(
                    f"{self.provider} answered a {answer.result.check.value} result "
                    f"to a {kind.value} check"
                )
            raw_sha256 = hashlib.sha256(response.content).hexdigest()
            return CheckOutcome.completed(
                to_check_result(answer.result, self.provider, latency_ms, raw_sha256)
            )
        raise VendorBadResponse(f"{self.provider} answered HTTP {status} with {answer.status!r}")
