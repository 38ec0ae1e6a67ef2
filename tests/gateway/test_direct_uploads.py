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
from tests.gateway.conftest import REVIEWER_KEY, GatewayStack, gateway_stack
from tests.moto_s3 import unique_bucket
from tests.support import CAPTURE_KINDS, jpeg_bytes


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
        "content_type": "image/jpeg",
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


async def submit(gw: GatewayStack, session_id: str, nonce: str, refs: list[ArtifactRef]) -> None:
    body = {
        "artifacts": [ref.model_dump(mode="json") for ref in refs],
        "capture": {"challenge_nonce": nonce, "scenario": "bona_fide"},
    }
    async with gw.http() as http:
        response = await http.post(f"/v1/sessions/{session_id}/submit", json=body)
    assert response.status_code == 202, response.text


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
    media = {kind: jpeg_bytes(f"{session_id}:{kind}") for kind in CAPTURE_KINDS}
    refs = [await direct_upload(gw, session_id, kind, data) for kind, data in media.items()]
    await submit(gw, session_id, created["challenge_nonce"], refs)
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


async def test_direct_upload_of_other_bytes_is_refused_at_seal(gw_s3: GatewayStack) -> None:
    created = await gw_s3.create_session()
    session_id = created["session_id"]
    media = {kind: jpeg_bytes(f"{session_id}:{kind}") for kind in CAPTURE_KINDS}
    selfie = ArtifactKind.selfie
    refs = [
        await direct_upload(
            gw_s3,
            session_id,
            kind,
            data,
            body=jpeg_bytes("a swapped selfie") if kind is selfie else None,
        )
        for kind, data in media.items()
    ]
    await submit(gw_s3, session_id, created["challenge_nonce"], refs)
    status = await gw_s3.wait_for_stage(session_id, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.rejected
    assert status.decision is not None
    assert "evidence_hash_mismatch" in status.decision.model_dump_json()


async def test_upload_url_needs_an_app_key(gw_s3: GatewayStack) -> None:
    created = await gw_s3.create_session()
    async with gw_s3.http(REVIEWER_KEY) as http:
        response = await http.post(
            f"/v1/sessions/{created['session_id']}/evidence/selfie/upload-url",
            json={"sha256": "0" * 64, "size_bytes": 1},
        )
    assert response.status_code == 403
