"""The gateway app: the app API, vendor webhooks and the reviewer API, under /v1.

`create_app` builds everything from one Settings; the Temporal client is the one given or
is connected at startup (and again on first use if the server was not up yet), so the
gateway can start before Temporal and answer /healthz meanwhile.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from gateway import (
    routes_codec,
    routes_jwks,
    routes_reviews,
    routes_sessions,
    routes_uploads,
    routes_webhooks,
)
from gateway.console import install_console
from gateway.errors import Refusal, install_error_handlers
from gateway.guards import install_guards
from gateway.onboarding import TemporalAccess
from gateway.state import Gateway
from signgate.metrics import REVIEW_QUEUE_DEPTH, REVIEW_QUEUE_OLDEST_AGE
from signgate.settings import Settings
from signgate.tracing import configure_tracing, current_trace_id, instrument_gateway

log = structlog.get_logger("signgate.gateway")


class RequestContext:
    """Fresh structlog context per request, and one access line with no body, key or query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=uuid.uuid4().hex[:16])
        # The OpenTelemetry server span (outside this middleware) is current here.
        trace_id = current_trace_id()
        if trace_id is not None:
            structlog.contextvars.bind_contextvars(trace_id=trace_id)
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            log.info(
                "request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000),
            )
            structlog.contextvars.clear_contextvars()


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    temporal = TemporalAccess(settings, client)
    gateway = Gateway.from_settings(settings, temporal)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await temporal.client()
        except Refusal:
            log.warning("gateway_started_without_temporal", address=settings.temporal_address)
        yield

    app = FastAPI(title="signgate gateway", version="1", description=__doc__, lifespan=lifespan)
    app.state.gateway = gateway
    install_error_handlers(app)
    install_guards(app, gateway)
    app.add_middleware(RequestContext)
    app.include_router(routes_sessions.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_reviews.router)
    app.include_router(routes_jwks.router)
    app.mount("/codec", routes_codec.codec_app(gateway))
    app.include_router(routes_uploads.router)
    install_console(app, settings)
    # A server span per request. The first tracing configuration in a process wins, so a
    # host (or a test) that configured one already keeps it.
    configure_tracing("signgate-gateway")
    instrument_gateway(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "temporal_connected": temporal.connected}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus scrape (aggregates only, no session data): open to the network the
        scraper sits on, like /healthz."""
        await _refresh_review_queue(temporal)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


REVIEW_QUEUE_QUERY = (
    "WorkflowType = 'OnboardingWorkflow' AND ExecutionStatus = 'Running' "
    "AND OnboardingStatus IN ('awaiting_review', 'escalated')"
)


async def _refresh_review_queue(temporal: TemporalAccess, limit: int = 1000) -> None:
    """Queue depth and the oldest waiting session's age (since its start), from one
    visibility query at scrape time. If Temporal is unreachable the gauges keep their
    last values and the scrape still answers."""
    try:
        client = await temporal.client()
        starts = [
            wf.start_time async for wf in client.list_workflows(REVIEW_QUEUE_QUERY, limit=limit)
        ]
    except Exception as err:  # a scrape must not fail because Temporal is down
        log.warning("review_queue_metrics_unavailable", error=type(err).__name__)
        return
    REVIEW_QUEUE_DEPTH.set(len(starts))
    now = datetime.now(UTC)
    REVIEW_QUEUE_OLDEST_AGE.set(max(((now - s).total_seconds() for s in starts), default=0.0))
