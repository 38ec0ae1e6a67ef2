"""Status events to the app: signed with our scheme, retried with backoff by a Temporal
activity until a real local HTTP server takes them, and never in the saga's way.

The receiver is a real HTTP server on loopback playing the onboarding app (a double at the
edge of the world: the app is not ours). The time-skipping server skips the backoff.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest_asyncio
from fastapi import FastAPI, Request, Response
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from signgate.models import (
    AppEvent,
    AppEventDelivery,
    AppEventType,
    DeliveryOutcome,
    Stage,
)
from signgate.webhooks import verify_webhook
from tests.conftest import SERVER_START_TIMEOUT, ensure_search_attributes
from tests.support import free_port, onboarding_request, serve_app
from tests.workflow.conftest import Stack
from workers.binaries import temporal_test_server_path
from workers.deliveries import DeliveryRow, app_deliveries
from workflows.app_events import WORKFLOW_TYPE, delivery_workflow_id


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: int


@dataclass
class App:
    """The onboarding app's callback endpoint: answers from a script, then 200."""

    url: str
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    async def wait_for(self, count: int, limit_s: float = 30.0) -> list[Received]:
        for _ in range(int(limit_s / 0.05)):
            if len(self.received) >= count:
                return self.received
            await asyncio.sleep(0.05)
        raise AssertionError(f"app got {len(self.received)} events, wanted {count}")

    def events(self) -> list[dict[str, object]]:
        return [json.loads(r.body) for r in self.received]


@asynccontextmanager
async def app_receiver(*script: int) -> AsyncIterator[App]:
    receiver = FastAPI()
    app = App(url="", script=list(script))

    @receiver.post("/hooks")
    async def hook(request: Request) -> Response:
        app.received.append(Received(dict(request.headers), await request.body(), int(time.time())))
        status = app.script.pop(0) if app.script else 200
        return Response(status_code=status)

    async with serve_app(receiver) as url:
        app.url = f"{url}/hooks"
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """This module's own time-skipping server. After an abandoned delivery child retried
    an activity, the Java test server was seen to stop skipping time for later tests (not
    explained); with its own server, that cannot reach the rest of the suite."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_path()),
        test_server_startup_timeout=SERVER_START_TIMEOUT,
        data_converter=pydantic_data_converter,
    )
    try:
        await ensure_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


async def settled_deliveries(stack: Stack, workflow_id: str, count: int) -> list[DeliveryRow]:
    """The session's deliveries once `count` of them have ended (bounded, real time)."""
    for _ in range(600):
        rows = await app_deliveries(stack.client, workflow_id)
        if sum(row.state in ("delivered", "given_up") for row in rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries never settled: {rows}")


def an_event(session_id: str = "sess-events-1") -> AppEvent:
    return AppEvent(
        event_id=f"{session_id}:decision",
        type=AppEventType.decision,
        session_id=session_id,
        tenant_id="demo",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        data={"action": "accept"},
    )


async def deliver(stack: Stack, url: str, event: AppEvent) -> DeliveryOutcome:
    handle = await stack.client.start_workflow(
        WORKFLOW_TYPE,
        AppEventDelivery(callback_url=url, event=event),
        id=delivery_workflow_id(event.event_id + f":{time.monotonic_ns()}"),
        task_queue=stack.settings.task_queue,
        result_type=DeliveryOutcome,
    )
    stack.handles.append(handle)
    return await asyncio.wait_for(handle.result(), timeout=60)


async def test_delivery_is_retried_until_the_app_answers_2xx(stack: Stack) -> None:
    event = an_event()
    async with app_receiver(500, 500) as app:
        outcome = await deliver(stack, app.url, event)

    assert outcome.delivered and outcome.attempts == 3 and outcome.status_code == 200
    assert len(app.received) == 3
    # Every attempt: the same event id and body, a fresh signature that verifies.
    assert {r.headers["x-event-id"] for r in app.received} == {event.event_id}
    assert {r.headers["idempotency-key"] for r in app.received} == {event.event_id}
    assert {r.headers["x-event-type"] for r in app.received} == {"decision"}
    assert len({r.body for r in app.received}) == 1
    for r in app.received:
        verify_webhook(r.headers["x-signature"], r.body, stack.settings.webhook_secrets, r.at)
    assert AppEvent.model_validate_json(app.received[0].body) == event


async def test_a_4xx_refusal_is_not_retried(stack: Stack) -> None:
    async with app_receiver(410) as app:
        outcome = await deliver(stack, app.url, an_event("sess-events-410"))
    assert not outcome.delivered and outcome.reason == "callback_refused"
    assert len(app.received) == 1


async def test_a_429_is_retried(stack: Stack) -> None:
    async with app_receiver(429) as app:
        outcome = await deliver(stack, app.url, an_event("sess-events-429"))
    assert outcome.delivered and outcome.attempts == 2
    assert len(app.received) == 2


async def test_a_callback_host_not_allowed_is_never_called(stack: Stack) -> None:
    async with app_receiver() as app:
        # Same server, but named `localhost`, which the allow-list does not hold.
        url = app.url.replace("127.0.0.1", "localhost")
        outcome = await deliver(stack, url, an_event("sess-events-ssrf"))
    assert not outcome.delivered and outcome.reason == "callback_url_not_allowed"
    assert app.received == []


async def test_saga_sends_decision_then_unlocked_signed_events(stack: Stack) -> None:
    async with app_receiver(503) as app:
        request, handle = await stack.start(callback_url=app.url)
        await stack.submit(handle, request.session_id, "bona_fide")
        result = await asyncio.wait_for(handle.result(), timeout=60)
        await app.wait_for(3)  # decision (503, then 200) and unlocked
        rows = await settled_deliveries(stack, handle.id, 2)

    assert result.stage is Stage.accepted and result.attestation is not None
    events = {e["type"]: e for e in app.events()}
    sid = request.session_id
    assert set(events) == {"decision", "unlocked"}
    assert events["decision"]["event_id"] == f"{sid}:decision"
    assert events["decision"]["data"]["action"] == "accept"  # type: ignore[index]
    assert result.decision_receipt is not None
    assert events["decision"]["data"]["ledger_seq"] == result.decision_receipt.seq  # type: ignore[index]
    assert events["unlocked"]["event_id"] == f"{sid}:unlocked"
    assert events["unlocked"]["data"]["attestation"] == result.attestation  # type: ignore[index]
    for r in app.received:
        verify_webhook(r.headers["x-signature"], r.body, stack.settings.webhook_secrets, r.at)
    # What `ops show` prints: each delivery, its state and attempts.
    by_event = {row.event_id: row for row in rows}
    assert by_event[f"{sid}:decision"].state == "delivered"
    assert by_event[f"{sid}:decision"].attempts == 2
    assert by_event[f"{sid}:unlocked"].attempts == 1


async def test_unlock_does_not_wait_for_a_dead_callback(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    request, handle = await stack.start(callback_url=dead)
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await asyncio.wait_for(handle.result(), timeout=60)

    assert result.stage is Stage.accepted and result.attestation is not None
    history = await handle.fetch_history()
    types = [e.event_type for e in history.events]
    # The saga started both deliveries and finished without ever waiting on one.
    assert types.count(EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) == 2
    assert EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED not in types
    rows = await app_deliveries(stack.client, handle.id)
    assert {row.event_id for row in rows} == {
        f"{request.session_id}:decision",
        f"{request.session_id}:unlocked",
    }
    assert all(row.state != "delivered" for row in rows)


async def test_step_up_is_told_to_the_app_with_the_fresh_challenge(stack: Stack) -> None:
    async with app_receiver() as app:
        request, handle = await stack.start(callback_url=app.url)
        await stack.submit(handle, request.session_id, "poor_capture")
        await app.wait_for(1)
        status = await stack.status(handle)

    (event,) = app.events()
    assert event["event_id"] == f"{request.session_id}:step_up_required:1"
    assert event["type"] == "step_up_required"
    assert status.stage is Stage.awaiting_step_up
    assert event["data"]["challenge_nonce"] == status.challenge_nonce  # type: ignore[index]


async def test_expiry_is_told_to_the_app(stack: Stack) -> None:
    async with app_receiver() as app:
        # A real one-second capture timeout: this must not depend on skipped time.
        timeouts = onboarding_request(stack.settings).timeouts.model_copy(update={"capture_s": 1})
        request, handle = await stack.start(callback_url=app.url, timeouts=timeouts)
        result = await asyncio.wait_for(handle.result(), timeout=60)
        await app.wait_for(1)

    assert result.stage is Stage.expired
    (event,) = app.events()
    assert event["event_id"] == f"{request.session_id}:expired"
    assert event["type"] == "expired"
    assert event["data"] == {"reason": "capture_timeout"}
