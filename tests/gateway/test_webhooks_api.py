"""Vendor webhooks over real HTTP: only a fresh, correctly signed, first delivery is signaled.

Sessions here use the sandbox's `no_webhook` scenario, which parks every check pending, so
the test plays the vendor and posts the webhooks itself.
"""

from __future__ import annotations

import json
import time
import uuid

from temporalio.api.enums.v1 import EventType

from signgate.models import OnboardingStatus, Stage
from signgate.sandbox.scenarios import BONA_FIDE
from signgate.vendor_api import VendorWebhook
from signgate.webhooks import SIGNATURE_HEADER, WebhookEventLog, sign_webhook
from tests.gateway.conftest import GatewayStack
from tests.gateway.test_sessions_api import error_reason
from tests.support import payload_codec_for_tests

PATH = "/v1/webhooks/vendor"


def pending_checks(status: OnboardingStatus) -> dict[str, str]:
    """vendor_ref -> check kind, from the status query's `pending` ("<kind>:<ref>")."""
    pairs = (entry.partition(":") for entry in status.pending)
    return {ref: kind for kind, sep, ref in pairs if sep}


async def parked_session(gw: GatewayStack) -> tuple[str, OnboardingStatus]:
    created = await gw.create_session()
    sid = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "no_webhook")
    status = await gw.wait_until(sid, lambda s: len(pending_checks(s)) == 5, "5 pending checks")
    return sid, status


def webhook_for(session_id: str, vendor_ref: str, kind: str, event_id: str | None = None) -> bytes:
    result = next(r for k, r in BONA_FIDE.items() if k.value == kind)
    webhook = VendorWebhook(
        event_id=event_id or str(uuid.uuid4()),
        vendor_ref=vendor_ref,
        reference=f"{session_id}:1:{kind}",
        check=result.check,
        completed_at=int(time.time()),
        result=result,
    )
    return webhook.model_dump_json().encode()


def signed(gw: GatewayStack, body: bytes, secret: str | None = None, age_s: int = 0) -> dict:
    secret = secret or gw.settings.webhook_secrets[0]
    header = sign_webhook(secret, body, int(time.time()) - age_s)
    return {SIGNATURE_HEADER: header, "Content-Type": "application/json"}


async def vendor_signals(gw: GatewayStack, session_id: str) -> list[str]:
    """The event ids of every `vendor_result` signal in the workflow's history."""
    handle = gw.temporal.client.get_workflow_handle(f"onboarding-{session_id}")
    history = await handle.fetch_history()  # as stored: payloads encrypted
    codec = payload_codec_for_tests()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    return [
        json.loads(codec.decrypt(s.input.payloads[0]).data)["event_id"]
        for s in signals
        if s.signal_name == "vendor_result"
    ]


async def test_forged_webhook_is_401_and_nothing_is_signaled(gw: GatewayStack) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    body = webhook_for(sid, ref, kind)

    async with gw.http(key=None) as http:
        response = await http.post(PATH, content=body, headers=signed(gw, body, "wrong-secret"))
        unsigned = await http.post(PATH, content=body)

    assert response.status_code == 401
    assert error_reason(response) == "webhook_signature_invalid"
    assert unsigned.status_code == 401
    assert error_reason(unsigned) == "webhook_signature_missing"
    after = await gw.status(sid)
    assert after.stage is Stage.checking
    assert pending_checks(after) == pending_checks(before)
    assert await vendor_signals(gw, sid) == []
    event_id = VendorWebhook.model_validate_json(body).event_id
    assert not WebhookEventLog(gw.settings.gateway_db).seen(event_id)


async def test_stale_webhook_is_401_and_nothing_is_signaled(gw: GatewayStack) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    body = webhook_for(sid, ref, kind)
    too_old = gw.settings.webhook_tolerance_s + 60

    async with gw.http(key=None) as http:
        response = await http.post(PATH, content=body, headers=signed(gw, body, age_s=too_old))

    assert response.status_code == 401
    assert error_reason(response) == "webhook_signature_stale"
    assert pending_checks(await gw.status(sid)) == pending_checks(before)
    assert await vendor_signals(gw, sid) == []


async def test_duplicate_event_id_is_acknowledged_but_changes_nothing(gw: GatewayStack) -> None:
    sid, before = await parked_session(gw)
    ref, kind = next(iter(pending_checks(before).items()))
    event_id = str(uuid.uuid4())
    first_body = webhook_for(sid, ref, kind, event_id)

    async with gw.http(key=None) as http:
        first = await http.post(PATH, content=first_body, headers=signed(gw, first_body))
        assert first.status_code == 200, first.text
        assert first.json() == {"duplicate": False, "superseded": False}
        after_first = await gw.wait_until(
            sid, lambda s: ref not in pending_checks(s), "the webhook's check to complete"
        )
        # A redelivery: same event id, fresh signature (as a vendor's retry would send).
        again_body = webhook_for(sid, ref, kind, event_id)
        again = await http.post(PATH, content=again_body, headers=signed(gw, again_body))

    assert again.status_code == 200, again.text
    assert again.json() == {"duplicate": True, "superseded": False}
    after_again = await gw.status(sid)
    assert pending_checks(after_again) == pending_checks(after_first)
    assert len(pending_checks(after_again)) == 4
    assert await vendor_signals(gw, sid) == [event_id]


async def test_all_webhooks_delivered_let_the_saga_decide(gw: GatewayStack) -> None:
    sid, before = await parked_session(gw)
    async with gw.http(key=None) as http:
        for ref, kind in pending_checks(before).items():
            body = webhook_for(sid, ref, kind)
            response = await http.post(PATH, content=body, headers=signed(gw, body))
            assert response.status_code == 200, response.text
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.accepted
    assert {c.provider for c in status.checks} == {"sandbox"}


async def test_webhook_for_unknown_session_is_404_and_not_recorded(gw: GatewayStack) -> None:
    body = webhook_for("nosuchsession1", "sbx_x", "liveness")
    async with gw.http(key=None) as http:
        response = await http.post(PATH, content=body, headers=signed(gw, body))
    assert response.status_code == 404
    assert error_reason(response) == "session_not_found"
    event_id = VendorWebhook.model_validate_json(body).event_id
    assert not WebhookEventLog(gw.settings.gateway_db).seen(event_id)


async def test_signed_but_malformed_webhook_is_422(gw: GatewayStack) -> None:
    body = b'{"event_id": "e1", "hello": "world"}'
    async with gw.http(key=None) as http:
        response = await http.post(PATH, content=body, headers=signed(gw, body))
    assert response.status_code == 422
    assert error_reason(response) == "webhook_body_invalid"
