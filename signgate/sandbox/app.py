"""The sandbox vendor: the generic vendor API (`signgate.vendor_api`) with scripted answers.

A test and demo tool, never a detector: it looks at no media and scores nothing. The
``scenario`` field of a check request picks the answer from `signgate.sandbox.scenarios`,
the way a payment sandbox's test card numbers do.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse

from signgate.models import CheckKind
from signgate.sandbox.scenarios import DEFAULT_SCENARIO, SCENARIOS, Answer
from signgate.vendor_api import (
    CHECKS_PATH,
    VendorCheckPayload,
    VendorCheckRequest,
    VendorCompleted,
    VendorPending,
    VendorWebhook,
)
from signgate.webhooks import SIGNATURE_HEADER, sign_webhook

log = structlog.get_logger("signgate.sandbox")

GARBAGE_HTML = "<html><body><h1>502 Bad Gateway</h1><p>upstream hiccup &#x1F4A5;</p></body></html>"
GARBAGE_JSON = '{"status": "completed", "result": {"check": '


class WebhookSender:
    """Delivers signed webhooks in background tasks, retrying non-2xx with a bounded backoff.

    Retries resend the same event (same `event_id`) with a fresh signature timestamp, so a
    receiver that dedupes on the event id applies it once however many deliveries arrive.
    """

    def __init__(
        self, secret: str, delay_s: float, retry_backoff_s: Sequence[float], timeout_s: float
    ) -> None:
        self._secret = secret
        self._delay_s = delay_s
        self._retry_backoff_s = list(retry_backoff_s)
        self._timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(
        self, url: str, vendor_ref: str, reference: str, result: VendorCheckPayload
    ) -> None:
        task = asyncio.create_task(self._deliver(url, vendor_ref, reference, result))
        self._tasks.add(task)  # a bare task may be garbage collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _deliver(
        self, url: str, vendor_ref: str, reference: str, result: VendorCheckPayload
    ) -> None:
        await asyncio.sleep(self._delay_s)
        webhook = VendorWebhook(
            event_id=str(uuid.uuid4()),
            vendor_ref=vendor_ref,
            reference=reference,
            check=result.check,
            completed_at=int(time.time()),
            result=result,
        )
        body = webhook.model_dump_json().encode()
        bound = log.bind(vendor_ref=vendor_ref, event_id=webhook.event_id, check=result.check.value)
        backoffs = [*self._retry_backoff_s, None]
        for attempt, backoff in enumerate(backoffs, start=1):
            problem = await self._post(url, body)
            if problem is None:
                bound.info("sandbox_webhook_delivered", attempt=attempt)
                return
            bound.warning("sandbox_webhook_attempt_failed", attempt=attempt, problem=problem)
            if backoff is not None:
                await asyncio.sleep(backoff)
        bound.error("sandbox_webhook_gave_up", attempts=len(backoffs))

    async def _post(self, url: str, body: bytes) -> str | None:
        """None if the receiver took the webhook, else what went wrong."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook(self._secret, body, int(time.time())),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"


def _is_http_url(url: str | None) -> bool:
    try:
        return url is not None and httpx.URL(url).scheme in ("http", "https")
    except httpx.InvalidURL:
        return False


def _refuse(status: int, reason: str, message: str) -> HTTPException:
    return HTTPException(status, detail={"reason": reason, "message": message})


def create_sandbox_app(
    webhook_secret: str,
    api_key: str,
    latency_ms: dict[CheckKind, int] | None = None,
    webhook_delay_s: float = 0.5,
    *,
    webhook_retry_backoff_s: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
    webhook_timeout_s: float = 5.0,
    hang_s: float = 30.0,
) -> FastAPI:
    """The sandbox app. `latency_ms` delays each check's answer (benchmarks); `webhook_delay_s`
    is how long a `slow_webhook` result takes; a failed delivery is retried once per entry of
    `webhook_retry_backoff_s`, after sleeping that long; `vendor_hangs` answers after `hang_s`."""
    latency = dict(latency_ms or {})
    flaky_seen: set[str] = set()  # references a `flaky_vendor` check already failed once
    sender = WebhookSender(
        webhook_secret, webhook_delay_s, webhook_retry_backoff_s, webhook_timeout_s
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sender.aclose()

    app = FastAPI(
        title="signgate vendor sandbox",
        description=__doc__,
        lifespan=lifespan,
    )

    def require_api_key(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise HTTPException(
                401,
                detail={"reason": "vendor_unauthorized", "message": "wrong or absent API key"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        CHECKS_PATH,
        dependencies=[Depends(require_api_key)],
        responses={200: {"model": VendorCompleted}, 202: {"model": VendorPending}},
    )
    async def submit_check(request: VendorCheckRequest) -> Response:
        scenario = SCENARIOS.get(request.scenario or DEFAULT_SCENARIO)
        if scenario is None:
            raise _refuse(
                422,
                "sandbox_unknown_scenario",
                f"unknown scenario {request.scenario!r}; known: {', '.join(SCENARIOS)}",
            )
        pending = scenario.answer in (Answer.webhook, Answer.never)
        if pending and not _is_http_url(request.callback_url):
            raise _refuse(
                422,
                "sandbox_callback_required",
                f"{scenario.name} answers by webhook: callback_url must be an http(s) URL",
            )
        if delay_ms := latency.get(request.check):
            await asyncio.sleep(delay_ms / 1000)
        if scenario.answer is Answer.down:
            raise _refuse(503, "vendor_unavailable", "sandbox scenario vendor_down")
        if scenario.answer is Answer.garbage:
            return Response(GARBAGE_HTML, media_type="text/html")
        if scenario.answer is Answer.garbage_json:
            return Response(GARBAGE_JSON, media_type="application/json")
        if scenario.answer is Answer.hang:
            await asyncio.sleep(hang_s)
        if scenario.answer is Answer.flaky and request.reference not in flaky_seen:
            flaky_seen.add(request.reference)
            raise _refuse(503, "vendor_unavailable", "sandbox scenario flaky_vendor: try again")
        if scenario.answer is Answer.wrong_content_type:
            completed = VendorCompleted(
                status="completed", result=scenario.result_for(request.check)
            )
            return Response(completed.model_dump_json(), media_type="text/plain")
        if scenario.answer in (Answer.completed, Answer.hang, Answer.flaky):
            completed = VendorCompleted(
                status="completed", result=scenario.result_for(request.check)
            )
            return JSONResponse(completed.model_dump(mode="json"))
        vendor_ref = f"sbx_{uuid.uuid4().hex}"
        if scenario.answer is Answer.webhook and request.callback_url is not None:
            sender.schedule(
                request.callback_url,
                vendor_ref,
                request.reference,
                scenario.result_for(request.check),
            )
        pending_answer = VendorPending(status="pending", vendor_ref=vendor_ref)
        return JSONResponse(pending_answer.model_dump(mode="json"), status_code=202)

    return app
