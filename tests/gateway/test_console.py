"""The reviewer console over real HTTP (no browser): login, media links, headers, review.

A second gateway app is served beside the `gw` stack's, on the same Temporal server,
evidence store and worker, with a console secret the test knows, so it can mint an
expired link exactly as the gateway would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway.app import create_app
from gateway.console.login import COOKIE
from gateway.console.signing import TokenSigner
from signgate.api_keys import KeyStore, key_store_path
from signgate.erasure import Erasure
from signgate.models import ArtifactKind, Stage
from tests.gateway.conftest import APP_KEY, OPS_KEY, REVIEWER_KEY, SENIOR_KEY, GatewayStack
from tests.gateway.test_reviews_api import session_in_review
from tests.support import serve_app
from tests.unit.test_console_tokens import write_video

SECRET = "console-test-secret-0123456789"
MEDIA = re.compile(r'src="(/console/media/[^"]+)"')


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console_url(gw: GatewayStack) -> AsyncIterator[str]:
    settings = gw.settings.model_copy(update={"console_secret": SECRET})
    async with serve_app(create_app(settings, client=gw.temporal.client)) as url:
        yield url


def browser(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30.0, follow_redirects=False)


@asynccontextmanager
async def logged_in(url: str, key: str = REVIEWER_KEY) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(url) as http:
        response = await http.post("/console/login", data={"api_key": key})
        assert response.status_code == 303, response.text
        yield http


@pytest.mark.parametrize(
    ("key", "status"), [(APP_KEY, 403), (OPS_KEY, 403), ("no-such-key", 401), ("", 401)]
)
async def test_only_reviewer_keys_may_log_in(console_url: str, key: str, status: int) -> None:
    async with browser(console_url) as http:
        response = await http.post("/console/login", data={"api_key": key})
        assert response.status_code == status
        assert COOKIE not in response.cookies
        assert (await http.get("/console/queue")).headers["location"] == "/console/login"


async def test_the_login_cookie_is_httponly_strict_signed_and_expiring(console_url: str) -> None:
    async with browser(console_url) as http:
        response = await http.post("/console/login", data={"api_key": REVIEWER_KEY})
        assert response.headers["location"] == "/console/queue"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Max-Age=28800" in cookie
        assert REVIEWER_KEY not in cookie  # the key itself is never stored
        claims = TokenSigner(SECRET.encode()).verify("login", response.cookies[COOKIE])
        assert (claims["sub"], claims["role"]) == ("rev-alice", "reviewer")
        http.cookies.set(COOKIE, response.cookies[COOKIE][:-2] + "xx", path="/console")
        assert (await http.get("/console/queue")).status_code == 303  # tampered: log in again


async def test_queue_and_session_page_show_the_session_with_no_store(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await session_in_review(gw, "borderline")
    async with logged_in(console_url) as http:
        queue = await http.get("/console/queue")
        assert queue.status_code == 200
        assert queue.headers["cache-control"] == "no-store"
        page = await http.get(f"/console/sessions/{sid}")
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for kind in ("liveness", "deepfake", "face_match", "device", "provenance"):
            assert f'data-testid="check-{kind}"' in page.text
        assert "review at 0.80" in page.text  # the threshold, from the session's policy file
        links = MEDIA.findall(page.text)
        assert len(links) >= 2  # selfie and ID photo (the jpeg "video" yields a frame too)
        selfie = await http.get(links[0])
        assert selfie.status_code == 200
        assert selfie.headers["content-type"] == "image/jpeg"
        assert selfie.headers["cache-control"] == "no-store"
        assert selfie.content[:3] == b"\xff\xd8\xff"


async def test_a_tampered_or_expired_media_link_is_refused(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await session_in_review(gw, "borderline")
    signer = TokenSigner(SECRET.encode())
    async with logged_in(console_url) as http:
        page = await http.get(f"/console/sessions/{sid}")
        link = MEDIA.findall(page.text)[0]
        token = link.rsplit("/", 1)[1]
        claims = signer.verify("media", token)
        assert claims["sid"] == sid
        assert (await http.get(link)).status_code == 200

        body, mac = token.split(".")
        tampered = await http.get(
            f"/console/media/{body}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
        )
        assert tampered.status_code == 403
        assert tampered.json()["error"]["reason"] == "console_token_invalid"

        other = {**claims, "sid": "someone-else"}
        swapped = signer.sign("media", 120, other).split(".")[0]
        assert (await http.get(f"/console/media/{swapped}.{mac}")).status_code == 403

        old = {k: v for k, v in claims.items() if k not in ("use", "exp")}
        expired = signer.sign("media", 120, old, now=claims["exp"] - 1000)
        refused = await http.get(f"/console/media/{expired}")
        assert refused.status_code == 403
        assert refused.json()["error"]["reason"] == "console_token_expired"
    async with browser(console_url) as anonymous:
        assert (await anonymous.get(link)).status_code == 401  # a link alone is not a login


async def test_an_erased_sessions_key_frame_is_refused_though_it_was_cached(
    gw: GatewayStack, console_url: str, tmp_path: Path
) -> None:
    video = tmp_path / "live.mp4"
    write_video(video, frames=8, size=(64, 48), codec="mp4v")  # decodes: the page has frames
    created = await gw.create_session()
    sid = created["session_id"]
    media = {ArtifactKind.liveness_video: video.read_bytes()}
    await gw.capture(sid, created["challenge_nonce"], "borderline", media)
    await gw.wait_for_stage(sid, Stage.awaiting_review)
    signer = TokenSigner(SECRET.encode())
    async with logged_in(console_url) as http:
        page = await http.get(f"/console/sessions/{sid}")  # extracts and caches the frames
        frame_links = [
            link
            for link in MEDIA.findall(page.text)
            if signer.verify("media", link.rsplit("/", 1)[1])["v"].startswith("frame:")
        ]
        assert frame_links
        assert (await http.get(frame_links[0])).status_code == 200
        Erasure(gw.deps.ledger, gw.deps.store.data_keys).erase(
            sid, by="ops-carol", reason="subject request"
        )
        refused = await http.get(frame_links[0])
        assert refused.status_code == 410
        assert refused.json()["error"]["reason"] == "evidence_erased"


async def test_a_review_needs_a_reason_and_the_form_token(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await session_in_review(gw, "borderline")
    async with logged_in(console_url) as http:
        page = await http.get(f"/console/sessions/{sid}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None
        url = f"/console/sessions/{sid}/review"
        no_token = await http.post(url, data={"decision": "approve", "reason": "looks right"})
        assert no_token.status_code == 403
        blank = await http.post(url, data={"decision": "approve", "reason": " ", "csrf": csrf[1]})
        assert blank.status_code == 422
        assert "give a reason" in blank.text
        assert (await gw.status(sid)).stage is Stage.awaiting_review
        done = await http.post(
            url, data={"decision": "approve", "reason": "selfie matches", "csrf": csrf[1]}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/console/sessions/{sid}?notice=approved"
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.awaiting_review)
    assert [(r.reviewer_id, r.reason) for r in status.reviews] == [("rev-alice", "selfie matches")]


async def test_a_login_ends_when_its_key_is_revoked(gw: GatewayStack, console_url: str) -> None:
    store = KeyStore(key_store_path(gw.settings.var_dir))
    stored, key = store.create("demo", "rev-frank", ["reviewer"])
    async with logged_in(console_url, key) as http:
        assert (await http.get("/console/queue")).status_code == 200
        store.revoke(stored.key_id)
        refused = await http.get("/console/queue")
    assert refused.status_code == 303
    assert refused.headers["location"] == "/console/login"


async def test_a_rejection_ends_the_review_and_its_reason_is_shown_escaped(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await session_in_review(gw, "borderline")
    reason = "<script>alert('x')</script> ID photo is a screen recapture"
    async with logged_in(console_url, SENIOR_KEY) as http:
        page = await http.get(f"/console/sessions/{sid}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None
        done = await http.post(
            f"/console/sessions/{sid}/review",
            data={"decision": "reject", "reason": reason, "csrf": csrf[1]},
        )
        assert done.status_code == 303
        status = await gw.wait_for_stage(sid, Stage.rejected)
        assert status.decision is not None and status.decision.decided_by == "reviewer:rev-bob"
        page = await http.get(f"/console/sessions/{sid}")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; ID photo" in page.text
    assert "Rejected by: rev-bob (senior_reviewer)" in page.text
    assert 'name="csrf"' not in page.text  # a closed session offers no review form


async def test_an_unknown_session_is_not_found(console_url: str) -> None:
    async with logged_in(console_url) as http:
        response = await http.get("/console/sessions/no-such-session-1")
    assert response.status_code == 404
    assert response.json()["error"]["reason"] == "session_not_found"


def form_token(page: httpx.Response) -> str:
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert csrf is not None, page.text[-500:]
    return csrf[1]


async def test_a_reviewer_requests_a_step_up_from_the_session_page(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await session_in_review(gw, "borderline")
    url = f"/console/sessions/{sid}/review"
    async with logged_in(console_url) as http:
        page = await http.get(f"/console/sessions/{sid}")
        assert 'name="decision" value="step_up"' in page.text  # the third answer
        csrf = form_token(page)
        no_token = await http.post(url, data={"decision": "step_up", "reason": "blurred jaw"})
        assert no_token.status_code == 403
        blank = await http.post(url, data={"decision": "step_up", "reason": "", "csrf": csrf})
        assert blank.status_code == 422 and "give a reason" in blank.text
        done = await http.post(
            url, data={"decision": "step_up", "reason": "blurred jaw", "csrf": csrf}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/console/sessions/{sid}?notice=step_up"
        status = await gw.wait_for_stage(sid, Stage.awaiting_step_up)
        assert [(r.reviewer_id, r.step_up, r.reason) for r in status.reviews] == [
            ("rev-alice", True, "blurred jaw")
        ]
        after = await http.get(done.headers["location"])
    assert "the person is asked for a fresh capture" in after.text
    assert "rev-alice (reviewer) requested a step-up: “blurred jaw”" in after.text
    assert "Step-up requested by: rev-alice (reviewer)" in after.text
    assert 'name="csrf"' not in after.text  # awaiting the capture: nothing to review


async def test_a_spent_step_up_is_not_offered_and_refused_if_forced(
    gw: GatewayStack, console_url: str
) -> None:
    sid = await gw.in_review_with_step_up_spent()
    async with logged_in(console_url) as http:
        page = await http.get(f"/console/sessions/{sid}")
        assert 'value="step_up"' not in page.text
        forced = await http.post(
            f"/console/sessions/{sid}/review",
            data={"decision": "step_up", "reason": "once more", "csrf": form_token(page)},
        )
    assert forced.status_code == 409
    assert "already had its one step-up" in forced.text
    assert (await gw.status(sid)).reviews == []


async def test_a_reviewer_cannot_decide_their_own_onboarding_in_the_console(
    gw: GatewayStack, console_url: str
) -> None:
    created = await gw.create_session(subject_ref="Rev-Alice")  # rev-alice, case folded
    sid = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "borderline")
    await gw.wait_for_stage(sid, Stage.awaiting_review)
    async with logged_in(console_url) as http:
        csrf = form_token(await http.get(f"/console/sessions/{sid}"))
        for decision in ("approve", "step_up"):
            refused = await http.post(
                f"/console/sessions/{sid}/review",
                data={"decision": decision, "reason": "it is me, fine", "csrf": csrf},
            )
            assert refused.status_code == 403
            assert "may not decide their own onboarding" in refused.text
    status = await gw.status(sid)
    assert status.stage is Stage.awaiting_review and status.reviews == []
