"""Access control beyond the matrix: four eyes through the API, no reviewing yourself,
revocation taking effect at once, and every review on the ledger naming its reviewer."""

from __future__ import annotations

from signgate.api_keys import KeyStore, key_store_path
from signgate.models import Stage
from tests.gateway.conftest import (
    APP_KEY,
    OTHER_TENANT_APP_KEY,
    REVIEWER_KEY,
    SECOND_REVIEWER_KEY,
    SENIOR_KEY,
    GatewayStack,
)
from tests.gateway.test_reviews_api import APPROVE, review
from tests.gateway.test_sessions_api import error_reason

RED_TIER = "live_but_deepfake_suspect"


async def in_review(gw: GatewayStack, scenario: str, subject_ref: str = "user-42") -> str:
    created = await gw.create_session(subject_ref=subject_ref)
    sid: str = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], scenario)
    await gw.wait_for_stage(sid, Stage.awaiting_review)
    return sid


async def test_two_plain_reviewers_cannot_override_red_tier(gw: GatewayStack) -> None:
    """The gateway passes the key's role, so a second plain reviewer is no senior."""
    sid = await in_review(gw, RED_TIER)
    first = await review(gw, REVIEWER_KEY, sid, APPROVE)
    assert first.status_code == 200, first.text

    second = await review(gw, SECOND_REVIEWER_KEY, sid, APPROVE)
    assert second.status_code == 409
    assert error_reason(second) == "review_refused"
    assert "senior_reviewer" in second.json()["error"]["message"]

    claimed = await review(gw, SECOND_REVIEWER_KEY, sid, {**APPROVE, "role": "senior_reviewer"})
    assert claimed.status_code == 422  # a role in the body is not a thing one can claim
    assert (await gw.status(sid)).stage is Stage.awaiting_review

    senior = await review(gw, SENIOR_KEY, sid, APPROVE)
    assert senior.status_code == 200, senior.text
    final = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert final.stage is Stage.accepted
    assert [(r.reviewer_id, r.role.value) for r in final.reviews] == [
        ("rev-alice", "reviewer"),
        ("rev-bob", "senior_reviewer"),
    ]


async def test_reviewer_cannot_decide_their_own_onboarding(gw: GatewayStack) -> None:
    # rev-erin is onboarding to sign something herself (her id spelled in capitals).
    sid = await in_review(gw, "borderline", subject_ref="REV-Erin")
    own = await review(gw, SECOND_REVIEWER_KEY, sid, APPROVE)
    assert own.status_code == 403
    assert error_reason(own) == "review_own_session"
    status = await gw.status(sid)
    assert status.stage is Stage.awaiting_review and status.reviews == []

    other = await review(gw, REVIEWER_KEY, sid, APPROVE)
    assert other.status_code == 200, other.text


async def test_every_review_is_a_ledger_entry_naming_the_reviewer(gw: GatewayStack) -> None:
    sid = await in_review(gw, "borderline")
    reject = {"approve": False, "reason": "ID photo is a screen capture"}
    response = await review(gw, SENIOR_KEY, sid, reject)
    assert response.status_code == 200, response.text
    await gw.wait_for_stage(sid, Stage.rejected)

    reviews = [e for e in gw.deps.ledger.entries(sid) if e.entry_type == "review"]
    assert len(reviews) == 1
    body = reviews[0].body
    assert (body["reviewer_id"], body["role"], body["approve"]) == (
        "rev-bob",
        "senior_reviewer",
        False,
    )
    assert body["reason"] == reject["reason"]


async def test_revoked_key_is_refused_from_the_next_request(gw: GatewayStack) -> None:
    store = KeyStore(key_store_path(gw.settings.var_dir))
    stored, key = store.create("demo", "short-lived-app", ["app"])
    async with gw.http(key) as http:
        assert (await http.get("/v1/sessions/abcdefgh1234")).status_code == 404
        store.revoke(stored.key_id)
        refused = await http.get("/v1/sessions/abcdefgh1234")
    assert refused.status_code == 401
    assert error_reason(refused) == "api_key_revoked"


async def test_tenant_isolation_holds_for_every_session_route(gw: GatewayStack) -> None:
    sid = (await gw.create_session())["session_id"]
    async with gw.http(OTHER_TENANT_APP_KEY) as http:
        answers = [
            await http.get(f"/v1/sessions/{sid}"),
            await http.get(f"/v1/sessions/{sid}/attestation"),
            await http.post(f"/v1/sessions/{sid}/submit", json={"artifacts": [], "capture": {}}),
        ]
    # The submit body is invalid too; validation answers first, and says nothing of the
    # session. The others are the same 404 an unknown session gets.
    assert [a.status_code for a in answers] == [404, 404, 422]
    async with gw.http(APP_KEY) as http:
        assert (await http.get(f"/v1/sessions/{sid}")).status_code == 200
