"""The deepfake check's heatmaps on the console's session page, as images behind the same
short-lived signed links as the photos.

The checks run on the built-in detectors here (`check_provider=local`), which keep each
heatmap as an evidence object and name it in an explanation line.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from gateway.app import create_app
from gateway.console.heatmaps import heatmap_refs
from gateway.console.signing import TokenSigner
from signgate.models import CheckKind, CheckResult, CheckStatus, OnboardingStatus
from tests.conftest import RunningDevServer
from tests.gateway.conftest import GatewayStack, gateway_stack
from tests.gateway.test_console import SECRET, browser, logged_in
from tests.support import serve_app

HEATMAP = re.compile(r'src="(/console/media/[^"]+)" alt="([^"]+)" data-testid="heatmap"')
PHOTO = re.compile(r'src="(/console/media/[^"]+)" alt="selfie"')
NAMED = re.compile(r"(selfie|id_front): region heatmap PNG kept as evidence sha256=([0-9a-f]{64})")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def local_gw(
    dev_server: RunningDevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayStack]:
    var_dir = tmp_path_factory.mktemp("heatmaps") / "var"
    async with gateway_stack(dev_server, var_dir, check_provider="local") as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console(local_gw: GatewayStack) -> AsyncIterator[str]:
    settings = local_gw.settings.model_copy(update={"console_secret": SECRET})
    async with serve_app(create_app(settings, client=local_gw.temporal.client)) as url:
        yield url


def deepfake_ran(status: OnboardingStatus) -> bool:
    return any(c.kind is CheckKind.deepfake and c.explanations for c in status.checks)


async def checked_session(gw: GatewayStack) -> tuple[str, OnboardingStatus]:
    created = await gw.create_session()
    sid: str = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "bona_fide")
    return sid, await gw.wait_until(sid, deepfake_ran, "the deepfake check", limit_s=120)


async def test_the_session_page_shows_each_heatmap_as_a_signed_no_store_png(
    local_gw: GatewayStack, console: str
) -> None:
    sid, status = await checked_session(local_gw)
    [deepfake] = [c for c in status.checks if c.kind is CheckKind.deepfake]
    named = dict(NAMED.findall("\n".join(deepfake.explanations)))
    assert set(named) == {"selfie", "id_front"}
    async with logged_in(console) as http:
        page = await http.get(f"/console/sessions/{sid}")
        assert page.status_code == 200, page.text
        links = HEATMAP.findall(page.text)
        assert [alt for _, alt in links] == [
            "deepfake heatmap: selfie",
            "deepfake heatmap: id front",
        ]
        for (url, _), image in zip(links, ("selfie", "id_front"), strict=True):
            claims = TokenSigner(SECRET.encode()).verify("media", url.rsplit("/", 1)[1])
            assert (claims["sid"], claims["v"], claims["sha"]) == (sid, "heatmap", named[image])
            served = await http.get(url)
            assert served.status_code == 200
            assert served.headers["content-type"] == "image/png"
            assert served.headers["cache-control"] == "no-store"
            assert hashlib.sha256(served.content).hexdigest() == named[image]
            assert Image.open(io.BytesIO(served.content)).format == "PNG"
    async with browser(console) as anonymous:
        assert (await anonymous.get(links[0][0])).status_code == 401


async def test_a_heatmap_link_serves_only_the_named_png(
    local_gw: GatewayStack, console: str
) -> None:
    sid, _ = await checked_session(local_gw)
    signer = TokenSigner(SECRET.encode())
    async with logged_in(console) as http:
        page = await http.get(f"/console/sessions/{sid}")
        heatmap = signer.verify("media", HEATMAP.findall(page.text)[0][0].rsplit("/", 1)[1])
        photo = signer.verify("media", PHOTO.findall(page.text)[0].rsplit("/", 1)[1])

        def link(**claims: object) -> str:
            fields = {k: v for k, v in {**heatmap, **claims}.items() if k not in ("use", "exp")}
            return f"/console/media/{signer.sign('media', 120, fields)}"

        other_hash = await http.get(link(sha="0" * 64))
        assert other_hash.status_code == 409
        assert other_hash.json()["error"]["reason"] == "evidence_hash_mismatch"
        a_photo = await http.get(link(key=photo["key"], sha=photo["sha"]))
        assert a_photo.status_code == 415  # the selfie's JPEG is not a heatmap
        assert a_photo.json()["error"]["reason"] == "media_not_displayable"
        old = {k: v for k, v in heatmap.items() if k not in ("use", "exp")}
        expired = signer.sign("media", 120, old, now=heatmap["exp"] - 1000)
        refused = await http.get(f"/console/media/{expired}")
        assert refused.status_code == 403
        assert refused.json()["error"]["reason"] == "console_token_expired"


def test_only_lines_naming_the_content_address_of_their_hash_are_shown(tmp_path: Path) -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    other = hashlib.sha256(b"y").hexdigest()

    def line(key: str) -> str:
        return f"selfie: region heatmap PNG kept as evidence sha256={sha} object_key={key}"

    check = CheckResult(
        kind=CheckKind.deepfake,
        status=CheckStatus.completed,
        provider="some-vendor",
        explanations=[
            line(f"sha256/{sha[:2]}/{sha}"),  # bare content address: shown
            line(f"sessions/s-this-one/sha256/{sha}"),  # this session's, same bytes: shown once
            line(f"sha256/{other[:2]}/{other}"),  # another object's key: ignored
            line(f"sessions/s-someone-else/sha256/{sha}"),  # another session's: ignored
            line("../../etc/passwd"),
            "selfie: no forensic trace above threshold",
        ],
    )
    refs = heatmap_refs([check], "s-this-one")
    assert [(r.label, r.object_key) for r in refs] == [
        ("deepfake heatmap: selfie", f"sha256/{sha[:2]}/{sha}")
    ]
