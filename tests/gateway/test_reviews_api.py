"""The reviewer API over real HTTP: the queue from visibility, and reviews through the Update."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signgate.client import GatewayClient, GatewayError
from signgate.models import Action, Stage
from tests.gateway.conftest import APP_KEY, OPS_KEY, REVIEWER_KEY, SENIOR_KEY, GatewayStack
from tests.gateway.test_sessions_api import error_reason

APPROVE = {"approve": True, "reason": "selfie matches the ID photo"}


async def session_in_review(gw: GatewayStack, scenario: str) -> str:
    created = await gw.create_session()
    sid: str = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], scenario)
    await gw.wait_for_stage(sid, Stage.awaiting_review)
    return sid


async def review(gw: GatewayStack, key: str | None, sid: str, body: dict[str, Any]) -> Any:
    async with gw.http(key) as http:
        return await http.post(f"/v1/sessions/{sid}/review", json=body)


async def queue_entry(gw: GatewayStack, sid: str, limit_s: float = 15.0) -> dict[str, Any]:
    """The session's row in GET /v1/reviews (visibility is eventually consistent: poll)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    async with gw.http(REVIEWER_KEY) as http:
        while True:
            response = await http.get("/v1/reviews")
            assert response.status_code == 200, response.text
            rows = {row["session_id"]: row for row in response.json()}
            if sid in rows:
                return rows[sid]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{sid} never appeared in the review queue")
            await asyncio.sleep(0.2)


async def test_review_queue_lists_a_session_awaiting_review(gw: GatewayStack) -> None:
    sid = await session_in_review(gw, "borderline")
    row = await queue_entry(gw, sid)
    assert row["status"] == Stage.awaiting_review.value
    assert row["tenant_id"] == "demo"
    assert row["risk_tier"] in ("green", "yellow", "red")
    assert row["start_time"]

    async with gw.http(APP_KEY) as http:
        forbidden = await http.get("/v1/reviews")
    assert forbidden.status_code == 403
    assert error_reason(forbidden) == "role_forbidden"


async def test_review_by_unknown_key_is_401(gw: GatewayStack) -> None:
    response = await review(gw, "stolen-looking-key", "abcdefgh1234", APPROVE)
    assert response.status_code == 401
    assert error_reason(response) == "api_key_invalid"


async def test_review_by_app_or_ops_key_is_403(gw: GatewayStack) -> None:
    for key in (APP_KEY, OPS_KEY):
        response = await review(gw, key, "abcdefgh1234", APPROVE)
        assert response.status_code == 403
        assert error_reason(response) == "role_forbidden"


async def test_review_of_session_not_awaiting_review_is_409_review_refused(
    gw: GatewayStack,
) -> None:
    sid = (await gw.create_session())["session_id"]
    response = await review(gw, REVIEWER_KEY, sid, APPROVE)
    assert response.status_code == 409
    assert error_reason(response) == "review_refused"
    assert "not awaiting review" in response.json()["error"]["message"]
    assert (await gw.status(sid)).stage is Stage.awaiting_capture


async def test_review_of_unknown_session_is_404(gw: GatewayStack) -> None:
    response = await review(gw, REVIEWER_KEY, "nosuchsession1", APPROVE)
    assert response.status_code == 404
    assert error_reason(response) == "session_not_found"


async def test_review_with_a_blank_reason_is_422(gw: GatewayStack) -> None:
    response = await review(gw, REVIEWER_KEY, "abcdefgh1234", {"approve": True, "reason": ""})
    assert response.status_code == 422
    assert error_reason(response) == "request_invalid"


async def test_red_tier_override_takes_a_second_senior_approval(gw: GatewayStack) -> None:
    sid = await session_in_review(gw, "live_but_deepfake_suspect")

    first = await review(gw, REVIEWER_KEY, sid, APPROVE)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "accepted_review": True,
        "decision_final": False,
        "approvals_needed": 1,
        "step_up_requested": False,
    }
    again = await review(gw, REVIEWER_KEY, sid, APPROVE)
    assert again.status_code == 409
    assert error_reason(again) == "review_refused"
    assert "already reviewed" in again.json()["error"]["message"]

    second = await review(gw, SENIOR_KEY, sid, {"approve": True, "reason": "jaw line is fine"})
    assert second.status_code == 200, second.text
    assert second.json()["decision_final"] is True

    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.accepted
    assert [r.reviewer_id for r in status.reviews] == ["rev-alice", "rev-bob"]
    async with gw.http(APP_KEY) as http:
        attestation = await http.get(f"/v1/sessions/{sid}/attestation")
    assert attestation.status_code == 200
    late = await review(gw, SENIOR_KEY, sid, APPROVE)
    assert late.status_code == 409
    assert error_reason(late) == "review_refused"


async def test_a_reviewer_step_up_asks_for_a_fresh_capture_that_decides_again(
    gw: GatewayStack,
) -> None:
    sid = await session_in_review(gw, "borderline")
    first = await gw.status(sid)
    async with GatewayClient(gw.base_url, REVIEWER_KEY) as reviewer:
        outcome = await reviewer.request_step_up(sid, "selfie blurred: capture again")
    assert outcome.step_up_requested and not outcome.decision_final

    status = await gw.wait_for_stage(sid, Stage.awaiting_step_up)
    assert status.challenge_nonce != first.challenge_nonce
    assert status.decision is not None and status.decision.action is Action.step_up
    [asked] = status.reviews
    assert (asked.reviewer_id, asked.step_up, asked.approve) == ("rev-alice", True, False)
    assert asked.ledger is not None and asked.ledger.entry_type == "review"
    # The app sees the fresh challenge in its status and captures again.
    async with gw.http(APP_KEY) as http:
        seen = (await http.get(f"/v1/sessions/{sid}")).json()
    assert seen["stage"] == "awaiting_step_up" and seen["pending"] == ["capture"]
    await gw.capture(sid, seen["challenge_nonce"], "bona_fide")
    done = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert done.stage is Stage.accepted and done.attestation is not None


async def test_a_second_step_up_is_409_step_up_limit_reached(gw: GatewayStack) -> None:
    sid = await gw.in_review_with_step_up_spent()

    response = await review(gw, SENIOR_KEY, sid, {"step_up": True, "reason": "still blurred"})
    assert response.status_code == 409
    assert error_reason(response) == "step_up_limit_reached"
    assert "approve or reject" in response.json()["error"]["message"]
    async with GatewayClient(gw.base_url, REVIEWER_KEY) as reviewer:
        with pytest.raises(GatewayError) as refused:
            await reviewer.request_step_up(sid, "one more try")
    assert refused.value.reason == "step_up_limit_reached"
    assert (await gw.status(sid)).stage is Stage.awaiting_review


@pytest.mark.parametrize(
    "body",
    [
        {"approve": True, "step_up": True, "reason": "both at once"},
        {"approve": False, "step_up": True, "reason": "both at once"},
        {"reason": "neither verdict nor step-up"},
        {"step_up": True, "reason": ""},
    ],
)
async def test_a_review_must_be_one_verdict_or_a_step_up_with_a_reason(
    gw: GatewayStack, body: dict[str, Any]
) -> None:
    response = await review(gw, REVIEWER_KEY, "abcdefgh1234", body)
    assert response.status_code == 422
    assert error_reason(response) == "request_invalid"


async def test_signgate_review_step_up_asks_for_a_fresh_capture(gw: GatewayStack) -> None:
    import json
    import os
    import subprocess
    import sys

    sid = await session_in_review(gw, "borderline")
    env = {**os.environ, "SIGNGATE_GATEWAY_PORT": str(gw.settings.gateway_port)}
    command = [sys.executable, "-m", "cli", "review", "step-up", sid, "--reason", "blurred"]
    run = await asyncio.create_subprocess_exec(
        *command, "--api-key", SENIOR_KEY, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(run.communicate(), timeout=60)
    assert run.returncode == 0, err.decode()
    assert json.loads(out)["step_up_requested"] is True
    status = await gw.wait_for_stage(sid, Stage.awaiting_step_up)
    assert [(r.reviewer_id, r.step_up) for r in status.reviews] == [("rev-bob", True)]
