"""Inbound webhooks per vendor scheme over real HTTP: each scheme's signature, both rotation
secrets, replayed ids, reordered events, and dedupe that survives a gateway restart.

Sessions use the sandbox's `no_webhook` scenario (every check parks pending), and the test
plays each vendor, signing exactly as that vendor's scheme does.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.server import serve
from signgate.models import Stage
from signgate.sandbox.scenarios import BONA_FIDE
from signgate.vendor_api import VendorWebhook
from signgate.webhook_verifiers import verifier_for
from tests.gateway.conftest import WEBHOOK_VENDORS, GatewayStack, _wait_healthy
from tests.gateway.test_sessions_api import error_reason
from tests.gateway.test_webhooks_api import parked_session, pending_checks, vendor_signals
from tests.support import free_port

SCHEMES = ["vendor", "persona", "onfido"]


def webhook(
    session_id: str, vendor_ref: str, kind: str, completed_at: int, event_id: str | None = None
) -> bytes:
    result = next(r for k, r in BONA_FIDE.items() if k.value == kind)
    return (
        VendorWebhook(
            event_id=event_id or str(uuid.uuid4()),
            vendor_ref=vendor_ref,
            reference=f"{session_id}:1:{kind}",
            check=result.check,
            completed_at=completed_at,
            result=result,
        )
        .model_dump_json()
        .encode()
    )


def signed(gw: GatewayStack, vendor: str, body: bytes, secret_index: int = 0) -> dict[str, str]:
    config = WEBHOOK_VENDORS[vendor]
    secrets = config.secrets or gw.settings.webhook_secrets
    one = config.model_copy(update={"secrets": [secrets[secret_index]]})
    return {**verifier_for(one, gw.settings).sign(body, int(time.time())), "X-Test": "1"}


def event_id_of(body: bytes) -> str:
    return VendorWebhook.model_validate_json(body).event_id


@pytest.mark.parametrize("vendor", ["persona", "onfido"])
async def test_each_scheme_signs_with_either_rotation_secret(gw: GatewayStack, vendor: str) -> None:
    sid, before = await parked_session(gw)
    (ref_a, kind_a), (ref_b, kind_b) = list(pending_checks(before).items())[:2]
    now = int(time.time())
    body_a = webhook(sid, ref_a, kind_a, now)
    body_b = webhook(sid, ref_b, kind_b, now)
    async with gw.http(key=None) as http:
        first = await http.post(
            f"/v1/webhooks/{vendor}", content=body_a, headers=signed(gw, vendor, body_a, 0)
        )
        second = await http.post(
            f"/v1/webhooks/{vendor}", content=body_b, headers=signed(gw, vendor, body_b, 1)
        )
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert sorted(await vendor_signals(gw, sid)) == sorted(
        [event_id_of(body_a), event_id_of(body_b)]
    )
    status = await gw.status(sid)
    assert {c.provider for c in status.checks if c.kind.value in (kind_a, kind_b)} <= {"sandbox"}


@pytest.mark.parametrize("vendor", SCHEMES)
async def test_wrong_secret_is_401_per_scheme(gw: GatewayStack, vendor: str) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    body = webhook(sid, ref, kind, int(time.time()))
    forged = WEBHOOK_VENDORS[vendor].model_copy(update={"secrets": ["attacker"]})
    headers = verifier_for(forged, gw.settings).sign(body, int(time.time()))
    # Another scheme's valid signature does not count either.
    other = "onfido" if vendor != "onfido" else "persona"
    async with gw.http(key=None) as http:
        response = await http.post(f"/v1/webhooks/{vendor}", content=body, headers=headers)
        crossed = await http.post(
            f"/v1/webhooks/{vendor}", content=body, headers=signed(gw, other, body)
        )
    assert response.status_code == 401
    assert error_reason(response) == "webhook_signature_invalid"
    assert crossed.status_code == 401
    assert await vendor_signals(gw, sid) == []


@pytest.mark.parametrize("vendor", SCHEMES)
async def test_stale_delivery_is_401_per_scheme(gw: GatewayStack, vendor: str) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    config = WEBHOOK_VENDORS[vendor]
    long_ago = int(time.time()) - config.max_event_age_s - gw.settings.webhook_tolerance_s - 60
    body = webhook(sid, ref, kind, long_ago)
    if vendor == "onfido":
        headers = signed(gw, vendor, body)  # no signed time: the body's event time is old
    else:
        one = config.model_copy(
            update={"secrets": [(config.secrets or gw.settings.webhook_secrets)[0]]}
        )
        headers = verifier_for(one, gw.settings).sign(body, long_ago)
    async with gw.http(key=None) as http:
        response = await http.post(f"/v1/webhooks/{vendor}", content=body, headers=headers)
    assert response.status_code == 401
    assert error_reason(response) == "webhook_signature_stale"
    assert await vendor_signals(gw, sid) == []


@pytest.mark.parametrize("vendor", SCHEMES)
async def test_older_event_after_a_newer_one_changes_nothing(gw: GatewayStack, vendor: str) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    now = int(time.time())
    newer = webhook(sid, ref, kind, now)
    older = webhook(sid, ref, kind, now - 30)
    async with gw.http(key=None) as http:
        first = await http.post(
            f"/v1/webhooks/{vendor}", content=newer, headers=signed(gw, vendor, newer)
        )
        late = await http.post(
            f"/v1/webhooks/{vendor}", content=older, headers=signed(gw, vendor, older)
        )
    assert first.json() == {"duplicate": False, "superseded": False}
    assert late.status_code == 200, late.text
    assert late.json() == {"duplicate": False, "superseded": True}
    assert await vendor_signals(gw, sid) == [event_id_of(newer)]


async def test_unknown_vendor_is_404(gw: GatewayStack) -> None:
    async with gw.http(key=None) as http:
        response = await http.post("/v1/webhooks/nobody", content=b"{}")
    assert response.status_code == 404
    assert error_reason(response) == "webhook_vendor_unknown"


async def test_dedupe_and_ordering_survive_a_gateway_restart(gw: GatewayStack) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    now = int(time.time())
    event_id = str(uuid.uuid4())
    body = webhook(sid, ref, kind, now, event_id)
    older = webhook(sid, ref, kind, now - 30)
    async with gw.http(key=None) as http:
        first = await http.post(
            "/v1/webhooks/persona", content=body, headers=signed(gw, "persona", body)
        )
    assert first.status_code == 200, first.text

    # A second gateway process on the same state directory: a restart, as far as it knows.
    settings = gw.settings.model_copy(update={"gateway_port": free_port()})
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop, client=gw.temporal.client))
    try:
        await _wait_healthy(settings.gateway_url, serving)
        restarted = GatewayStack(settings, gw.deps, settings.gateway_url, gw.temporal)
        async with restarted.http(key=None) as http:
            again = await http.post(
                "/v1/webhooks/persona", content=body, headers=signed(gw, "persona", body)
            )
            late = await http.post(
                "/v1/webhooks/persona", content=older, headers=signed(gw, "persona", older)
            )
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=20)
    assert again.json() == {"duplicate": True, "superseded": False}
    assert late.json() == {"duplicate": False, "superseded": True}
    assert await vendor_signals(gw, sid) == [event_id]
    assert (await gw.status(sid)).stage is Stage.checking


async def test_callback_url_not_on_the_allow_list_is_refused(gw: GatewayStack) -> None:
    async with gw.http() as http:
        for url in (
            "https://evil.example.net/hooks",
            "http://127.0.0.1:9/hooks",
            "http://169.254.169.254/latest/meta-data",
        ):
            response = await http.post(
                "/v1/sessions",
                json={"subject_ref": "user-42", "intent": "sign:nda", "callback_url": url},
            )
            assert response.status_code == 422, url
            assert error_reason(response) == "callback_url_not_allowed"
    created = await gw.create_session(callback_url="https://app.example.com/hooks")
    assert created["stage"] == "awaiting_capture"
