"""The reviewer's whole job in a real headless Chromium (Debian's `chromium`, driven by
Playwright for Python), on the embedded stack exactly as `signgate dev` runs it.

A borderline session (public-domain photo as selfie and ID, a real video for liveness) is
onboarded through `signgate.client`; a reviewer logs in, opens it from the queue, sees
both photos, the key frames and the scores, approves with a reason, and the session is
unlocked. Screenshots of the queue and the session page are saved as test artifacts under
var/test-artifacts/console/ (paths printed; var/ is not committed, and pytest's own tmp is
pruned after three runs); with SIGNGATE_UPDATE_DOCS=1 the session page is also copied to
docs/console-session.png.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageDraw
from playwright.async_api import Browser, Page, async_playwright, expect
from skimage import data as skimage_data

from signgate.client import GatewayClient
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, CaptureMetadata, Stage
from signgate.settings import Settings
from signgate.signer import KeyRing
from workers.ports import free_port
from workers.stack import embedded_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"


def face(photo: str = "astronaut") -> Image.Image:
    """A public-domain photo from scikit-image. Each session needs its own: a capture seen
    in another session (exactly or perceptually) is rejected as a replay."""
    image = Image.fromarray(getattr(skimage_data, photo)()).convert("RGB")
    return image.crop((120, 0, 420, 300))


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def id_card(photo: str = "astronaut") -> bytes:
    card = Image.new("RGB", (480, 300), (226, 232, 240))
    card.paste(face(photo).resize((150, 150)), (24, 70))
    draw = ImageDraw.Draw(card)
    draw.rectangle((0, 0, 480, 44), fill=(30, 64, 175))
    draw.text((24, 14), "IDENTITY CARD  (test specimen)", fill=(255, 255, 255))
    for row, line in enumerate(("SURNAME  SPECIMEN", "GIVEN    TEST", "NO.      X0000000")):
        draw.text((200, 90 + 30 * row), line, fill=(20, 20, 20))
    return jpeg(card)


def liveness_video(directory: Path, photo: str = "astronaut") -> bytes:
    """Two seconds of the face turning slightly (a real MP4 video, decodable by OpenCV)."""
    path = directory / "liveness.mp4"
    base = np.ascontiguousarray(np.asarray(face(photo))[:, :, ::-1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (300, 300))
    assert writer.isOpened()
    for index in range(20):
        shift = np.float32([[1, 0, index - 10], [0, 1, 0]])
        writer.write(cv2.warpAffine(base, shift, (300, 300), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    return path.read_bytes()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    settings = Settings(
        var_dir=tmp_path_factory.mktemp("browser") / "var",
        temporal_address=f"127.0.0.1:{free_port()}",
        gateway_port=free_port(),
        sandbox_port=free_port(),
    )
    async with embedded_stack(settings, ui=False):
        yield settings


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    # No skip without it: a missing browser is a broken setup, and the test says so.
    assert CHROMIUM.exists(), "Debian's chromium is missing: run `make install`"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def borderline_session(settings: Settings, photo: str = "astronaut") -> str:
    async with GatewayClient(settings.gateway_url, settings.api_key_for("app")) as app:
        created = await app.start_session("browser-user", "sign:lease")
        sid = created.session_id
        with tempfile.TemporaryDirectory() as tmp:
            media = {
                ArtifactKind.selfie: (jpeg(face(photo)), "image/jpeg"),
                ArtifactKind.id_front: (id_card(photo), "image/jpeg"),
                ArtifactKind.liveness_video: (liveness_video(Path(tmp), photo), "video/mp4"),
            }
        refs = [await app.upload(sid, kind, body, ctype) for kind, (body, ctype) in media.items()]
        capture = CaptureMetadata(challenge_nonce=created.challenge_nonce, scenario="borderline")
        await app.submit(sid, refs, capture)
        status = await app.wait_for_decision(sid, include_review=True, timeout_s=60)
        assert status.stage is Stage.awaiting_review
    return sid


async def open_from_queue(page: Page, base: str, sid: str) -> None:
    """The queue comes from visibility, which is eventually consistent: reload, bounded."""
    link = page.get_by_role("link", name=sid)
    for _ in range(50):
        if await link.count():
            return
        await page.wait_for_timeout(200)
        await page.goto(f"{base}/console/queue")
    raise AssertionError(f"{sid} never appeared in the console's queue")


async def test_a_reviewer_approves_the_borderline_session_in_the_browser(
    stack: Settings, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sid = await borderline_session(stack)
    base = stack.gateway_url
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(20_000)

    await page.goto(f"{base}/console")
    await expect(page).to_have_url(f"{base}/console/login")
    await page.fill("#api_key", stack.api_key_for("reviewer"))
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/console/queue")
    await expect(page.get_by_test_id("reviewer")).to_contain_text("rev-alice")

    await open_from_queue(page, base, sid)
    queue_png = ARTIFACTS / "console-queue.png"
    await page.screenshot(path=str(queue_png), full_page=True)

    await page.get_by_role("link", name=sid).click()
    await expect(page).to_have_url(f"{base}/console/sessions/{sid}")
    await expect(page.get_by_test_id("stage")).to_have_text("awaiting_review")
    for alt in ("selfie", "id front", "liveness frame 1"):
        image = page.get_by_alt_text(alt)
        await expect(image).to_be_visible()
        width = await image.evaluate("img => img.complete ? img.naturalWidth : 0")
        assert width > 0, f"{alt} did not load"
    for kind in ("liveness", "deepfake", "face_match", "device", "provenance"):
        score = page.get_by_test_id(f"check-{kind}").get_by_test_id("score")
        assert float(await score.inner_text()) >= 0.0
    await expect(page.get_by_test_id("decision")).to_contain_text("review")
    session_png = ARTIFACTS / "console-session.png"
    await page.screenshot(path=str(session_png), full_page=True)

    await page.check("input[value=approve]")
    await page.fill("#reason", "selfie, ID photo and key frames show the same person")
    await page.click("form.review button[type=submit]")
    await expect(page.get_by_role("status")).to_have_text("Your approval is recorded.")
    await expect(page.get_by_test_id("four-eyes")).to_contain_text("rev-alice (reviewer)")

    async with GatewayClient(base, stack.api_key_for("app")) as app:
        status = await app.wait_for_decision(sid, timeout_s=60)
        assert status.stage is Stage.accepted
        claims = await app.verified_attestation(
            sid, KeyRing.from_dir(stack.keys_dir), ledger=SqliteLedger(stack.ledger_path, None)
        )
    assert claims.decision.value == "accept"
    await page.reload()
    await expect(page.get_by_test_id("unlocked")).to_be_visible()
    await expect(page.get_by_test_id("stage")).to_have_text("accepted")

    print(f"\nconsole screenshots: {queue_png} {session_png}")
    assert queue_png.stat().st_size > 10_000 and session_png.stat().st_size > 10_000
    if os.environ.get("SIGNGATE_UPDATE_DOCS") == "1":
        shutil.copyfile(session_png, DOCS / "console-session.png")
    await page.close()


async def test_a_reviewer_requests_a_step_up_in_the_browser(
    stack: Settings, browser: Browser
) -> None:
    sid = await borderline_session(stack, "camera")
    base = stack.gateway_url
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(20_000)
    await page.goto(f"{base}/console/login")
    await page.fill("#api_key", stack.api_key_for("senior_reviewer"))
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/console/queue")

    await page.goto(f"{base}/console/sessions/{sid}")
    await page.check("input[value=step_up]")
    await page.fill("#reason", "the selfie is too dark to compare: capture again")
    await page.click("form.review button[type=submit]")
    await expect(page.get_by_role("status")).to_contain_text("asked for a fresh capture")
    await expect(page.get_by_test_id("four-eyes")).to_contain_text(
        "Step-up requested by: rev-bob (senior_reviewer)"
    )
    async with GatewayClient(base, stack.api_key_for("app")) as app:
        status = await app.wait_for(sid, {Stage.awaiting_step_up}, timeout_s=30)
    assert status.pending == ["capture"] and status.reviews[0].step_up
    await page.close()
