"""The bundled vendor sandbox over loopback HTTP: its guard, its scripted answers, and its
webhooks, which a receiver verifies exactly as the gateway will (`verify_webhook`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response

from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckRequest
from signgate.sandbox import create_sandbox_app, run_sandbox
from signgate.sandbox.scenarios import SCENARIOS
from signgate.settings import Settings
from signgate.vendor_api import (
    CHECKS_PATH,
    VendorWebhook,
    parse_vendor_webhook,
    session_id_from_reference,
)
from signgate.vendor_client import VendorClient, VendorUnavailable
from signgate.webhooks import SIGNATURE_HEADER, WebhookRejected, verify_webhook
from tests.support import serve_app
from workers.ports import free_port

SECRET = "whsec-sandbox-unit"
API_KEY = "sandbox-unit-key"
WEBHOOK_DELAY_S = 0.3
RETRY_BACKOFF_S = (0.05, 0.05, 0.05)  # so four attempts in all
SESSION = "sess_sandbox_01"


@dataclass
class Receiver:
    """The gateway's side of a webhook, reduced to: verify, then accept (or fail on purpose)."""

    fail_first: int = 0
    accepted: list[VendorWebhook] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # event ids, in arrival order
    rejected: list[str] = field(default_factory=list)  # reason codes

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhook")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            try:
                verify_webhook(
                    request.headers.get(SIGNATURE_HEADER), body, [SECRET], int(time.time())
                )
            except WebhookRejected as err:
                self.rejected.append(err.reason)
                return Response(status_code=401)
            event = parse_vendor_webhook(body)
            self.attempts.append(event.event_id)
            if len(self.attempts) <= self.fail_first:
                return Response(status_code=503)
            self.accepted.append(event)
            return Response(status_code=204)

        return app


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def sandbox_url() -> AsyncIterator[str]:
    app = create_sandbox_app(
        SECRET,
        API_KEY,
        latency_ms={CheckKind.deepfake: 300},
        webhook_delay_s=WEBHOOK_DELAY_S,
        webhook_retry_backoff_s=RETRY_BACKOFF_S,
    )
    async with serve_app(app) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def vendor(sandbox_url: str) -> AsyncIterator[VendorClient]:
    async with VendorClient(sandbox_url, API_KEY, timeout_s=5) as client:
        yield client


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """Serve the receiver; yield its webhook URL."""
    async with serve_app(receiver.app()) as url:
        yield f"{url}/webhook"


def check_request(kind: CheckKind, scenario: str) -> CheckRequest:
    return CheckRequest(
        session_id=SESSION,
        tenant_id="demo",
        round=2,
        kind=kind,
        artifacts=[],
        capture=CaptureMetadata(challenge_nonce="nonce-1", scenario=scenario),
        merkle_root="b" * 64,
    )


# --------------------------------------------------------------------------- webhooks


async def test_slow_webhook_delivers_a_signed_bona_fide_result_after_the_delay(
    vendor: VendorClient,
) -> None:
    receiver = Receiver()
    async with receiving(receiver) as callback:
        started = time.monotonic()
        outcome = await vendor.submit_check(
            check_request(CheckKind.face_match, "slow_webhook"), callback
        )
        assert outcome.state == "pending"
        await wait_until(lambda: len(receiver.accepted) == 1)
        elapsed_s = time.monotonic() - started
    [event] = receiver.accepted
    assert receiver.rejected == []
    assert elapsed_s >= WEBHOOK_DELAY_S
    assert event.vendor_ref == outcome.vendor_ref
    assert event.reference == f"{SESSION}:2:face_match"
    assert session_id_from_reference(event.reference) == SESSION
    assert event.check is CheckKind.face_match and event.result.check is CheckKind.face_match
    assert event.result.risk_score <= 0.06 and event.result.attack_hints == []
    assert abs(event.completed_at - time.time()) < 10


async def test_each_webhook_event_has_a_fresh_event_id(vendor: VendorClient) -> None:
    receiver = Receiver()
    async with receiving(receiver) as callback:
        for kind in (CheckKind.liveness, CheckKind.device):
            await vendor.submit_check(check_request(kind, "slow_webhook"), callback)
        await wait_until(lambda: len(receiver.accepted) == 2)
    assert len({event.event_id for event in receiver.accepted}) == 2


async def test_no_webhook_delivers_nothing_within_a_bounded_wait(vendor: VendorClient) -> None:
    receiver = Receiver()
    async with receiving(receiver) as callback:
        outcome = await vendor.submit_check(
            check_request(CheckKind.liveness, "no_webhook"), callback
        )
        assert outcome.state == "pending"
        await asyncio.sleep(WEBHOOK_DELAY_S + 4 * sum(RETRY_BACKOFF_S) + 0.5)
    assert receiver.attempts == [] and receiver.rejected == []


async def test_refused_delivery_is_retried_with_the_same_event_id(vendor: VendorClient) -> None:
    receiver = Receiver(fail_first=2)
    async with receiving(receiver) as callback:
        await vendor.submit_check(check_request(CheckKind.deepfake, "slow_webhook"), callback)
        await wait_until(lambda: len(receiver.accepted) == 1)
    assert len(receiver.attempts) == 3
    assert len(set(receiver.attempts)) == 1
    assert receiver.accepted[0].event_id == receiver.attempts[0]


async def test_delivery_gives_up_after_a_bounded_number_of_attempts(vendor: VendorClient) -> None:
    receiver = Receiver(fail_first=1000)
    async with receiving(receiver) as callback:
        await vendor.submit_check(check_request(CheckKind.liveness, "slow_webhook"), callback)
        await wait_until(lambda: len(receiver.attempts) == len(RETRY_BACKOFF_S) + 1)
        await asyncio.sleep(4 * sum(RETRY_BACKOFF_S) + 0.3)
    assert len(receiver.attempts) == len(RETRY_BACKOFF_S) + 1
    assert receiver.accepted == []


# --------------------------------------------------------------------------- the HTTP edge


def wire_body(scenario: str | None, callback_url: str | None = None) -> dict[str, object]:
    return {
        "check": "liveness",
        "reference": f"{SESSION}:1:liveness",
        "artifacts": [
            {
                "kind": ArtifactKind.selfie.value,
                "sha256": "a" * 64,
                "size_bytes": 10,
                "content_type": "image/jpeg",
            }
        ],
        "scenario": scenario,
        "callback_url": callback_url,
    }


@pytest.mark.parametrize(
    "authorization", [None, "", f"Basic {API_KEY}", f"Bearer {API_KEY}x", "Bearer", API_KEY]
)
async def test_check_without_the_right_bearer_key_is_refused_401(
    sandbox_url: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        response = await http.post(CHECKS_PATH, json=wire_body(None), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]["reason"] == "vendor_unauthorized"


async def post_check(sandbox_url: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        return await http.post(
            CHECKS_PATH, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        )


@pytest.mark.parametrize("callback_url", [None, "ftp://127.0.0.1/hook", "not a url"])
@pytest.mark.parametrize("scenario", ["slow_webhook", "no_webhook"])
async def test_pending_scenario_without_an_http_callback_is_refused(
    sandbox_url: str, scenario: str, callback_url: str | None
) -> None:
    response = await post_check(sandbox_url, wire_body(scenario, callback_url))
    assert response.status_code == 422
    assert response.json()["detail"]["reason"] == "sandbox_callback_required"


async def test_unknown_scenario_is_refused_with_the_known_ones_listed(sandbox_url: str) -> None:
    response = await post_check(sandbox_url, wire_body("deep_fake"))
    assert response.status_code == 422
    assert response.json()["detail"]["reason"] == "sandbox_unknown_scenario"
    assert "deepfake" in response.json()["detail"]["message"]


async def test_media_in_the_request_is_refused(sandbox_url: str) -> None:
    body = wire_body(None)
    body["selfie_b64"] = "/9j/4AAQSkZJRg=="
    assert (await post_check(sandbox_url, body)).status_code == 422


async def test_vendor_down_answers_503(sandbox_url: str) -> None:
    assert (await post_check(sandbox_url, wire_body("vendor_down"))).status_code == 503


async def test_garbage_answers_200_with_html(sandbox_url: str) -> None:
    response = await post_check(sandbox_url, wire_body("garbage"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_configured_latency_delays_only_its_check(sandbox_url: str) -> None:
    async def timed(check: str) -> float:
        started = time.monotonic()
        response = await post_check(sandbox_url, wire_body(None) | {"check": check})
        assert response.status_code == 200
        return time.monotonic() - started

    assert await timed("deepfake") >= 0.3
    assert await timed("liveness") < 0.3


# --------------------------------------------------------------------------- the scenario table


def test_borderline_weighted_risk_falls_in_the_middle_band() -> None:
    borderline = SCENARIOS["borderline"]
    weights = {
        CheckKind.liveness: 0.45,
        CheckKind.deepfake: 0.35,
        CheckKind.face_match: 0.15,
        CheckKind.device: 0.05,
    }
    weighted = sum(w * borderline.result_for(kind).risk_score for kind, w in weights.items())
    assert weighted == pytest.approx(0.43, abs=0.01)


def test_bona_fide_webhook_scenarios_report_bona_fide_results() -> None:
    for name in ("slow_webhook", "bona_fide"):
        for kind in CheckKind:
            result = SCENARIOS[name].result_for(kind)
            assert result.check is kind
            assert 0.02 <= result.risk_score <= 0.06 and result.confidence == pytest.approx(0.95)


# --------------------------------------------------------------------------- serving


async def test_run_sandbox_serves_with_the_settings_key_until_stopped() -> None:
    settings = Settings(vendor_api_key="stack-key", webhook_secrets=["stack-secret"])
    port = free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(run_sandbox(settings, stop, port=port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            for _ in range(100):
                with contextlib.suppress(httpx.ConnectError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        async with VendorClient(url, "stack-key", timeout_s=5) as vendor:
            outcome = await vendor.submit_check(check_request(CheckKind.device, "bona_fide"), None)
        assert outcome.state == "completed"
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
    async with VendorClient(url, "stack-key", timeout_s=5) as vendor:
        with pytest.raises(VendorUnavailable):
            await vendor.submit_check(check_request(CheckKind.device, "bona_fide"), None)
