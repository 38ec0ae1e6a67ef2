"""The app API over real HTTP: auth, sessions, evidence upload, submit, status, attestation."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from gateway import onboarding
from signgate.evidence import object_key_for
from signgate.models import OnboardingRequest, Stage
from tests.gateway.conftest import (
    APP_KEY,
    DEVICE_SIGNALS_CAP,
    OTHER_TENANT_APP_KEY,
    REVIEWER_KEY,
    GatewayStack,
)
from tests.support import jpeg_bytes


def error_reason(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"reason", "message"}, body
    return str(body["error"]["reason"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ auth


async def test_request_without_api_key_is_refused_401(gw: GatewayStack) -> None:
    async with gw.http(key=None) as http:
        response = await http.post("/v1/sessions", json={"subject_ref": "u", "intent": "i"})
    assert response.status_code == 401
    assert error_reason(response) == "api_key_missing"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_api_key_is_refused_401(gw: GatewayStack) -> None:
    async with gw.http(key="not-a-key") as http:
        response = await http.get("/v1/sessions/abcdefgh12")
    assert response.status_code == 401
    assert error_reason(response) == "api_key_invalid"


async def test_bearer_token_is_accepted_like_x_api_key(gw: GatewayStack) -> None:
    created = await gw.create_session()
    async with gw.http(key=None, Authorization=f"Bearer {APP_KEY}") as http:
        response = await http.get(f"/v1/sessions/{created['session_id']}")
    assert response.status_code == 200, response.text


async def test_reviewer_key_cannot_create_a_session_403(gw: GatewayStack) -> None:
    async with gw.http(REVIEWER_KEY) as http:
        response = await http.post("/v1/sessions", json={"subject_ref": "u", "intent": "i"})
    assert response.status_code == 403
    assert error_reason(response) == "role_forbidden"


async def test_other_tenants_app_key_sees_no_such_session_404(gw: GatewayStack) -> None:
    created = await gw.create_session()
    sid = created["session_id"]
    async with gw.http(OTHER_TENANT_APP_KEY) as http:
        status = await http.get(f"/v1/sessions/{sid}")
        upload = await http.put(
            f"/v1/sessions/{sid}/evidence/selfie",
            content=b"x",
            headers={"X-Content-SHA256": sha256(b"x")},
        )
        attestation = await http.get(f"/v1/sessions/{sid}/attestation")
    for response in (status, upload, attestation):
        assert response.status_code == 404, response.text
        assert error_reason(response) == "session_not_found"
    # The reviewer, not bound to the app's tenant, sees it.
    assert (await gw.status(sid, key=REVIEWER_KEY)).session_id == sid


# ------------------------------------------------------------------ sessions


async def test_create_session_starts_workflow_and_issues_a_challenge(gw: GatewayStack) -> None:
    created = await gw.create_session(mode="shadow")
    sid = created["session_id"]
    assert created["workflow_id"] == f"onboarding-{sid}"
    assert created["stage"] == Stage.awaiting_capture.value
    assert created["challenge_nonce"]
    handle = gw.temporal.client.get_workflow_handle(created["workflow_id"])
    description = await handle.describe()
    assert description.workflow_type == "OnboardingWorkflow"
    assert description.task_queue == gw.settings.task_queue


async def test_duplicate_session_create_returns_the_same_session(gw: GatewayStack) -> None:
    sid = f"dup{uuid.uuid4().hex[:12]}"
    handle = gw.temporal.client.get_workflow_handle(f"onboarding-{sid}")
    first = await gw.create_session(session_id=sid)
    run_id = (await handle.describe()).run_id
    second = await gw.create_session(session_id=sid)
    assert second == first
    assert (await handle.describe()).run_id == run_id


async def test_same_session_id_from_another_tenant_is_refused(gw: GatewayStack) -> None:
    sid = f"tk{uuid.uuid4().hex[:12]}"
    await gw.create_session(session_id=sid)
    async with gw.http(OTHER_TENANT_APP_KEY) as http:
        response = await http.post(
            "/v1/sessions", json={"session_id": sid, "subject_ref": "u", "intent": "i"}
        )
    assert response.status_code == 409
    assert error_reason(response) == "session_id_taken"


async def test_invalid_session_body_is_422_without_echoing_input(gw: GatewayStack) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/sessions", json={"subject_ref": "secret-person-name" * 20, "intent": "i"}
        )
    assert response.status_code == 422
    assert error_reason(response) == "request_invalid"
    assert "secret-person-name" not in response.text


# ------------------------------------------------------------------ evidence


async def test_upload_streams_into_the_store_and_returns_the_ref(gw: GatewayStack) -> None:
    sid = (await gw.create_session())["session_id"]
    data = jpeg_bytes(sid)

    async def chunks() -> AsyncIterator[bytes]:
        # Chunked transfer, no Content-Length: the gateway must stream, not buffer a length.
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    async with gw.http() as http:
        response = await http.put(
            f"/v1/sessions/{sid}/evidence/selfie",
            content=chunks(),
            headers={"X-Content-SHA256": sha256(data), "Content-Type": "image/jpeg"},
        )
    assert response.status_code == 201, response.text
    ref = response.json()
    assert ref == {
        "kind": "selfie",
        "sha256": sha256(data),
        "size_bytes": len(data),
        "content_type": "image/jpeg",
        "object_key": object_key_for(sha256(data), sid),
    }
    with gw.deps.store.open(ref["object_key"]) as stored:
        assert stored.read() == data


async def test_upload_with_wrong_hash_is_422_and_nothing_is_stored(gw: GatewayStack) -> None:
    sid = (await gw.create_session())["session_id"]
    data = jpeg_bytes(sid)
    async with gw.http() as http:
        response = await http.put(
            f"/v1/sessions/{sid}/evidence/selfie",
            content=data,
            headers={"X-Content-SHA256": sha256(b"other bytes")},
        )
    assert response.status_code == 422
    assert error_reason(response) == "evidence_hash_mismatch"
    assert not gw.deps.store.exists(object_key_for(sha256(data), sid))
    assert not gw.deps.store.exists(object_key_for(sha256(b"other bytes"), sid))
    assert list((gw.settings.evidence_dir / "tmp").iterdir()) == []


async def test_upload_without_hash_header_is_422(gw: GatewayStack) -> None:
    sid = (await gw.create_session())["session_id"]
    async with gw.http() as http:
        response = await http.put(f"/v1/sessions/{sid}/evidence/selfie", content=b"abc")
    assert response.status_code == 422
    assert error_reason(response) == "evidence_hash_missing"


async def test_upload_over_the_cap_is_413(gw: GatewayStack) -> None:
    sid = (await gw.create_session())["session_id"]
    data = b"{" + b" " * (DEVICE_SIGNALS_CAP + 10) + b"}"

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    async with gw.http() as http:
        declared = await http.put(
            f"/v1/sessions/{sid}/evidence/device_signals",
            content=data,
            headers={"X-Content-SHA256": sha256(data)},
        )
        streamed = await http.put(  # no Content-Length: the cap holds while streaming
            f"/v1/sessions/{sid}/evidence/device_signals",
            content=chunks(),
            headers={"X-Content-SHA256": sha256(data)},
        )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert error_reason(response) == "evidence_too_large"
    assert not gw.deps.store.exists(object_key_for(sha256(data), sid))


async def test_upload_to_unknown_session_is_404(gw: GatewayStack) -> None:
    async with gw.http() as http:
        response = await http.put(
            "/v1/sessions/nosuchsession1/evidence/selfie",
            content=b"x",
            headers={"X-Content-SHA256": sha256(b"x")},
        )
    assert response.status_code == 404
    assert error_reason(response) == "session_not_found"


async def test_submit_with_unknown_artifact_is_422_and_not_signaled(gw: GatewayStack) -> None:
    created = await gw.create_session()
    sid = created["session_id"]
    ghost = sha256(b"never uploaded " + sid.encode())
    body = {
        "artifacts": [
            {
                "kind": "selfie",
                "sha256": ghost,
                "size_bytes": 10,
                "content_type": "image/jpeg",
                "object_key": object_key_for(ghost, sid),
            }
        ],
        "capture": {"challenge_nonce": created["challenge_nonce"]},
    }
    async with gw.http() as http:
        response = await http.post(f"/v1/sessions/{sid}/submit", json=body)
    assert response.status_code == 422
    assert error_reason(response) == "evidence_missing"
    status = await gw.status(sid)
    assert status.stage is Stage.awaiting_capture and status.round == 0


async def test_bona_fide_capture_unlocks_an_attestation(gw: GatewayStack) -> None:
    created = await gw.create_session()
    sid = created["session_id"]
    async with gw.http() as http:
        early = await http.get(f"/v1/sessions/{sid}/attestation")
    assert early.status_code == 409
    assert error_reason(early) == "not_unlocked"

    await gw.capture(sid, created["challenge_nonce"], "bona_fide")
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.accepted

    async with gw.http() as http:
        response = await http.get(f"/v1/sessions/{sid}/attestation")
        late_upload = await http.put(
            f"/v1/sessions/{sid}/evidence/selfie",
            content=b"x",
            headers={"X-Content-SHA256": sha256(b"x")},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"attestation": status.attestation}
    assert late_upload.status_code == 409
    assert error_reason(late_upload) == "session_not_awaiting_capture"

    # Creating the closed session again answers with it; no second run starts.
    handle = gw.temporal.client.get_workflow_handle(f"onboarding-{sid}")
    run_id = (await handle.describe()).run_id
    again = await gw.create_session(session_id=sid)
    assert again["stage"] == Stage.accepted.value
    assert (await handle.describe()).run_id == run_id


async def test_health_answers_without_a_key(gw: GatewayStack) -> None:
    async with gw.http(key=None) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_a_status_no_worker_answers_is_a_quick_503_with_retry_after(
    gw: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While workers churn, a status query can wait on them for longer than an app's HTTP
    timeout (the chaos run saw 30 s): the gateway bounds the wait and says retry."""
    monkeypatch.setattr(onboarding, "STATUS_QUERY_TIMEOUT", timedelta(seconds=1))
    session_id = uuid.uuid4().hex
    # A session whose task queue no worker polls: its status query is never answered.
    await gw.temporal.client.start_workflow(
        onboarding.WORKFLOW_TYPE,
        OnboardingRequest(session_id=session_id, tenant_id="demo", subject_ref="u", intent="i"),
        id=onboarding.workflow_id(session_id),
        task_queue=f"nobody-polls-{session_id}",
        search_attributes=onboarding.start_search_attributes("demo"),
    )
    started = time.monotonic()
    async with gw.http() as http:
        response = await http.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 503, response.text
    assert error_reason(response) == "status_unavailable"
    assert response.headers["retry-after"] == "1"
    assert time.monotonic() - started < 10  # bounded by the 1 s timeout, not the SDK's
    # Nothing changed for the session: it still waits for a worker, untouched.
    description = await gw.temporal.client.get_workflow_handle(
        onboarding.workflow_id(session_id)
    ).describe()
    assert description.status is WorkflowExecutionStatus.RUNNING
