"""The payload codec and the public keys, through the real gateway and the real dev server.

A real session runs end to end; its history, read by a client WITHOUT our codec (what the
server stores, what a database dump or an unprivileged UI shows), holds no applicant PII,
and the gateway's ops-only remote codec turns the same payloads back into it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from signgate.attestation import verify_attestation
from signgate.jwks import keyring_from_jwks
from signgate.models import Stage
from signgate.payload_codec import ENCODING
from signgate.signer import KeyRing
from tests.gateway.conftest import APP_KEY, OPS_KEY, REVIEWER_KEY, GatewayStack
from tests.gateway.test_sessions_api import error_reason


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside a protobuf message (a history event)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if isinstance(v, Message)]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            yield from payloads_in(item)


def as_codec_json(payloads: list[Payload]) -> dict[str, object]:
    """The remote codec protocol's body: proto3 JSON of Payloads (bytes as base64)."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def from_codec_json(body: dict[str, list[dict[str, object]]]) -> list[Payload]:
    out = []
    for item in body["payloads"]:
        metadata = item.get("metadata") or {}
        assert isinstance(metadata, dict)
        out.append(
            Payload(
                metadata={k: base64.b64decode(v) for k, v in metadata.items()},
                data=base64.b64decode(str(item.get("data", ""))),
            )
        )
    return out


async def test_history_without_the_codec_holds_no_pii_and_the_ops_codec_decodes_it(
    gw: GatewayStack,
) -> None:
    subject = f"applicant-ada-{uuid.uuid4().hex[:8]}"
    intent = f"sign:mortgage-{uuid.uuid4().hex[:8]}"
    created = await gw.create_session(subject_ref=subject, intent=intent)
    sid = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "bona_fide")
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.accepted

    plain_client = await Client.connect(gw.temporal.address, data_converter=pydantic_data_converter)
    history = await plain_client.get_workflow_handle(f"onboarding-{sid}").fetch_history()
    stored = [p for event in history.events for p in payloads_in(event)]
    ours = [p for p in stored if p.metadata.get("encoding") == ENCODING]
    assert len(ours) >= 10  # input, signals, activity inputs and results, the result
    raw_history = b"".join(event.SerializeToString() for event in history.events)
    for pii in (subject.encode(), intent.encode()):
        assert pii not in raw_history
        assert base64.b64encode(pii) not in raw_history

    async with gw.http(OPS_KEY) as http:
        response = await http.post("/codec/decode", json=as_codec_json(ours))
    assert response.status_code == 200, response.text
    decoded = b"".join(p.data for p in from_codec_json(response.json()))
    assert subject.encode() in decoded
    assert intent.encode() in decoded


async def test_codec_encode_then_decode_round_trips_for_ops(gw: GatewayStack) -> None:
    original = Payload(metadata={"encoding": b"json/plain"}, data=b'{"subject_ref": "ada"}')
    async with gw.http(OPS_KEY) as http:
        encoded = await http.post("/codec/encode", json=as_codec_json([original]))
        [sealed] = from_codec_json(encoded.json())
        decoded = await http.post("/codec/decode", json=as_codec_json([sealed]))
    assert sealed.metadata["encoding"] == ENCODING
    assert b"ada" not in sealed.data
    assert from_codec_json(decoded.json()) == [original]


async def test_codec_refuses_app_and_reviewer_keys_403_and_no_key_401(gw: GatewayStack) -> None:
    body = as_codec_json([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    for key in (APP_KEY, REVIEWER_KEY):
        async with gw.http(key) as http:
            for path in ("/codec/decode", "/codec/encode"):
                response = await http.post(path, json=body)
                assert response.status_code == 403, (key, path)
                assert error_reason(response) == "role_forbidden"
    async with gw.http(key=None) as http:
        response = await http.post("/codec/decode", json=body)
    assert response.status_code == 401
    assert error_reason(response) == "api_key_missing"


async def test_codec_refuses_a_body_that_is_not_payloads_400(gw: GatewayStack) -> None:
    async with gw.http(OPS_KEY) as http:
        response = await http.post("/codec/decode", content=b"{not json")
    assert response.status_code == 400
    assert error_reason(response) == "codec_request_invalid"


async def test_codec_answers_cors_preflight_for_the_temporal_ui_only(gw: GatewayStack) -> None:
    ui = f"http://127.0.0.1:{gw.settings.temporal_ui_port}"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    async with gw.http(key=None) as http:
        allowed = await http.options("/codec/decode", headers={"Origin": ui, **preflight})
        foreign = await http.options(
            "/codec/decode", headers={"Origin": "http://evil.example", **preflight}
        )
        elsewhere = await http.get("/healthz", headers={"Origin": ui})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ui
    assert "access-control-allow-origin" not in foreign.headers
    assert "access-control-allow-origin" not in elsewhere.headers  # CORS only on /codec


async def test_jwks_is_public_and_verifies_a_real_attestation_alone(gw: GatewayStack) -> None:
    created = await gw.create_session()
    sid = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "bona_fide")
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.attestation is not None

    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10.0) as anonymous:
        response = await anonymous.get("/.well-known/jwks.json")
    assert response.status_code == 200
    document = response.json()
    assert {k["kid"] for k in document["keys"]} == set(
        KeyRing.from_dir(gw.settings.keys_dir).key_ids
    )
    assert all("d" not in k for k in document["keys"])
    claims = verify_attestation(status.attestation, keyring_from_jwks(document))
    assert claims.sid == sid
