"""Idempotency-Key on POST, over real HTTP against the real stack: a replay never acts twice."""

from __future__ import annotations

import uuid

from gateway.app import create_app
from signgate.models import Stage
from tests.gateway.conftest import APP_KEY, OTHER_TENANT_APP_KEY, GatewayStack, capture_media
from tests.gateway.test_sessions_api import error_reason
from tests.support import CAPTURE_KINDS, serve_app

BODY = {"subject_ref": "user-idem", "intent": "sign:nda"}


async def test_same_key_same_body_replays_the_saved_response(gw: GatewayStack) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    async with gw.http() as http:
        first = await http.post("/v1/sessions", json=BODY, headers=headers)
        again = await http.post("/v1/sessions", json=BODY, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    # No session_id in the body: a second real call would have made a second session.
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_same_key_different_body_is_409_idempotency_conflict(gw: GatewayStack) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    async with gw.http() as http:
        first = await http.post("/v1/sessions", json=BODY, headers=headers)
        other = await http.post(
            "/v1/sessions", json={**BODY, "intent": "sign:other"}, headers=headers
        )
    assert first.status_code == 201
    assert other.status_code == 409
    assert error_reason(other) == "idempotency_conflict"


async def test_keys_are_scoped_to_the_caller(gw: GatewayStack) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    async with gw.http(APP_KEY) as mine, gw.http(OTHER_TENANT_APP_KEY) as theirs:
        first = await mine.post("/v1/sessions", json=BODY, headers=headers)
        second = await theirs.post("/v1/sessions", json=BODY, headers=headers)
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert first.json()["session_id"] != second.json()["session_id"]


async def test_replayed_submit_is_not_signalled_again_and_survives_a_restart(
    gw: GatewayStack,
) -> None:
    created = await gw.create_session()
    sid = created["session_id"]
    refs = [await gw.upload(sid, kind, capture_media(sid, kind)) for kind in CAPTURE_KINDS]
    body = {
        "artifacts": [ref.model_dump(mode="json") for ref in refs],
        "capture": {"challenge_nonce": created["challenge_nonce"], "scenario": "borderline"},
    }
    headers = {"Idempotency-Key": f"submit-{sid}"}
    async with gw.http() as http:
        first = await http.post(f"/v1/sessions/{sid}/submit", json=body, headers=headers)
        assert first.status_code == 202, first.text
        await gw.wait_for_stage(sid, Stage.awaiting_review)
        without_key = await http.post(f"/v1/sessions/{sid}/submit", json=body)
    # A second real submit is refused by the session...
    assert without_key.status_code == 409
    # ...while the keyed retry, served by a freshly started gateway on the same var/,
    # gets the first answer back and signals nothing.
    async with serve_app(create_app(gw.settings, gw.temporal.client)) as url:
        async with gw.http() as http:
            replay = await http.post(f"{url}/v1/sessions/{sid}/submit", json=body, headers=headers)
    assert replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await gw.status(sid)).round == 1


async def test_unusable_idempotency_key_is_400(gw: GatewayStack) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/sessions", json=BODY, headers={"Idempotency-Key": "k" * 300}
        )
    assert response.status_code == 400
    assert error_reason(response) == "idempotency_key_invalid"


async def test_a_create_retried_after_an_unsaved_answer_finds_its_session(
    gw: GatewayStack,
) -> None:
    """A 5xx is not saved for replay, though its workflow may have started: the retry runs
    again, and the session id derived from the key finds the session that exists."""
    import sqlite3
    from contextlib import closing

    key = f"create-{uuid.uuid4().hex}"
    body = {"subject_ref": "user-42", "intent": "sign:nda"}
    async with gw.http(**{"Idempotency-Key": key}) as http:
        first = await http.post("/v1/sessions", json=body)
        with closing(sqlite3.connect(gw.settings.gateway_db)) as db, db:
            db.execute("DELETE FROM idempotency WHERE key = ?", (key,))  # as after a 5xx
        again = await http.post("/v1/sessions", json=body)
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers  # it really ran again
    assert again.json()["session_id"] == first.json()["session_id"]
    async with gw.http() as http:  # without a key, every create is a new session
        other = await http.post("/v1/sessions", json=body)
    assert other.json()["session_id"] != first.json()["session_id"]
