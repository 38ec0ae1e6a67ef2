"""A session whose media go straight to S3 (moto, real HTTP) through presigned PUTs.

Same stack as the other gateway tests (real dev server, worker, gateway over HTTP; the
vendor sandbox is the only double), with `SIGNGATE_EVIDENCE=s3`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from signgate.evidence_s3 import S3EvidenceStore
from signgate.models import ArtifactKind, ArtifactRef, OnboardingStatus, Stage
from tests.conftest import RunningDevServer
from tests.gateway.conftest import REVIEWER_KEY, GatewayStack, capture_media, gateway_stack
from tests.moto_s3 import unique_bucket
from tests.support import CAPTURE_KINDS


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gw_s3(
    dev_server: RunningDevServer, moto_s3_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayStack]:
    var_dir = tmp_path_factory.mktemp("gateway-s3") / "var"
    async with gateway_stack(dev_server, var_dir, **s3_settings(moto_s3_url)) as stack:
        yield stack


def s3_settings(moto_s3_url: str) -> dict[str, Any]:
    """`SIGNGATE_EVIDENCE=s3` on moto's server, in a bucket of its own."""
    return {
        "evidence": "s3",
        "s3_endpoint_url": moto_s3_url,
        "s3_bucket": unique_bucket(),
        "evidence_retention_days": 1,
    }


async def direct_upload(
    gw: GatewayStack, session_id: str, kind: ArtifactKind, data: bytes, body: bytes | None = None
) -> ArtifactRef:
    """Ask the gateway for an upload URL, then PUT straight to S3 (`body` to cheat)."""
    intent = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "content_type": "video/mp4" if kind is ArtifactKind.liveness_video else "image/jpeg",
    }
    async with gw.http() as http:
        response = await http.post(
            f"/v1/sessions/{session_id}/evidence/{kind.value}/upload-url", json=intent
        )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    upload = answer["upload"]
    async with httpx.AsyncClient(timeout=10) as s3:
        put = await s3.put(
            upload["url"], content=data if body is None else body, headers=upload["headers"]
        )
    assert put.status_code == 200, put.text
    return ArtifactRef.model_validate(answer["ref"])


async def submit(
    gw: GatewayStack, session_id: str, nonce: str, refs: list[ArtifactRef]
) -> httpx.Response:
    body = {
        "artifacts": [ref.model_dump(mode="json") for ref in refs],
        "capture": {"challenge_nonce": nonce, "scenario": "bona_fide"},
    }
    async with gw.http() as http:
        return await http.post(f"/v1/sessions/{session_id}/submit", json=body)


@dataclass(frozen=True)
class DirectSession:
    session_id: str
    media: dict[ArtifactKind, bytes]
    refs: list[ArtifactRef]
    status: OnboardingStatus


async def run_direct_upload_session(gw: GatewayStack) -> DirectSession:
    """A bona fide session whose captures go straight to S3, run until it is decided."""
    created = await gw.create_session()
    session_id = created["session_id"]
    media = {kind: capture_media(session_id, kind) for kind in CAPTURE_KINDS}
    refs = [await direct_upload(gw, session_id, kind, data) for kind, data in media.items()]
    submitted = await submit(gw, session_id, created["challenge_nonce"], refs)
    assert submitted.status_code == 202, submitted.text
    status = await gw.wait_for_stage(session_id, Stage.accepted, Stage.rejected)
    return DirectSession(session_id, media, refs, status)


async def test_bona_fide_session_with_direct_s3_uploads_is_unlocked(gw_s3: GatewayStack) -> None:
    run = await run_direct_upload_session(gw_s3)
    assert run.status.stage is Stage.accepted
    assert run.status.attestation is not None
    store = gw_s3.deps.store
    assert isinstance(store, S3EvidenceStore)
    for ref in run.refs:  # sealed: encrypted in the locked bucket, readable as plaintext
        with store.open(ref.object_key) as plain:
            assert plain.read() == run.media[ref.kind]


def staged(gw: GatewayStack, ref: ArtifactRef) -> bool:
    store = gw.deps.store
    assert isinstance(store, S3EvidenceStore)
    listing = store._s3.list_objects_v2(Bucket=store.staging_bucket, Prefix=ref.object_key)
    return listing.get("KeyCount", 0) > 0


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        # S3 here (moto) keeps a body that misses the signed checksum: the re-hash refuses it.
        ("other-bytes", 422, "evidence_hash_mismatch"),
        # The hash is right but the bytes are no image: the gateway's sniffing refuses it.
        ("not-an-image", 415, "content_type_mismatch"),
        # A JPEG cut short: its header passes the sniffing, the full decode does not.
        ("truncated-jpeg", 422, "image_corrupt"),
        # Fewer bytes arrived than announced.
        ("short-body", 422, "evidence_upload_incomplete"),
    ],
)
async def test_a_bad_direct_upload_is_refused_at_submit_and_not_kept(
    gw_s3: GatewayStack, case: str, status: int, reason: str
) -> None:
    """A direct upload gets the content checks at submit that an upload through the
    gateway gets while it streams: a clear 4xx with a reason code, the staged object
    deleted, nothing signalled (the session still waits for its capture)."""
    created = await gw_s3.create_session()
    session_id = created["session_id"]
    media = {kind: capture_media(session_id, kind) for kind in CAPTURE_KINDS}
    selfie = ArtifactKind.selfie
    good = media[selfie]
    body: bytes | None = None  # what is PUT, when it is not what was announced
    if case == "other-bytes":
        body = (
            good[: len(good) // 2] + bytes([good[len(good) // 2] ^ 1]) + good[len(good) // 2 + 1 :]
        )
    elif case == "not-an-image":
        media[selfie] = b"%PDF-1.7 not a selfie"
    elif case == "truncated-jpeg":
        media[selfie] = good[:600]
    else:
        body = good[:-100]
    refs = [
        await direct_upload(gw_s3, session_id, kind, data, body=body if kind is selfie else None)
        for kind, data in media.items()
    ]
    bad = next(ref for ref in refs if ref.kind is selfie)
    assert staged(gw_s3, bad)

    refused = await submit(gw_s3, session_id, created["challenge_nonce"], refs)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["reason"] == reason
    assert not staged(gw_s3, bad) and not gw_s3.deps.store.exists(bad.object_key)
    state = await gw_s3.status(session_id)
    assert state.stage is Stage.awaiting_capture


async def test_upload_url_needs_an_app_key(gw_s3: GatewayStack) -> None:
    created = await gw_s3.create_session()
    async with gw_s3.http(REVIEWER_KEY) as http:
        response = await http.post(
            f"/v1/sessions/{created['session_id']}/evidence/selfie/upload-url",
            json={"sha256": "0" * 64, "size_bytes": 1},
        )
    assert response.status_code == 403
