"""Helpers shared by the workflow, gateway and end-to-end tests."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from google.protobuf.message import Message
from PIL import Image
from temporalio.api.common.v1 import Payload

from signgate.evidence import LocalEvidenceStore
from signgate.models import (
    Action,
    ArtifactKind,
    AttestationClaims,
    CaptureMetadata,
    EvidenceSubmission,
    OnboardingRequest,
    RiskTier,
    SessionTimeouts,
)
from signgate.payload_codec import AesGcmPayloadCodec, PayloadKeys
from signgate.settings import Settings
from workers.ports import free_port

# The payload key of the shared test servers. Fixed, so a history recorded by a test
# (a golden file, SIGNGATE_RECORD_HISTORIES=1) still decrypts when replayed in a later
# run; a test key, never used outside the test suite.
TEST_PAYLOAD_KEY = b"signgate-test-payload-key-32byte"


def payload_codec_for_tests() -> AesGcmPayloadCodec:
    return AesGcmPayloadCodec(PayloadKeys.of([TEST_PAYLOAD_KEY]))


@asynccontextmanager
async def serve_app(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app over real HTTP on loopback inside the running event loop."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"server on port {port} did not start in 10 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


def make_settings(var_dir: Path, vendor_url: str, **overrides: Any) -> Settings:
    return Settings(
        var_dir=var_dir,
        vendor_url=vendor_url,
        gateway_port=overrides.pop("gateway_port", free_port()),
        task_queue=overrides.pop("task_queue", f"test-{uuid.uuid4().hex[:8]}"),
        # The shared test servers' clients encrypt with the test key; processes built from
        # these settings (gateway codec endpoint, CLI) must hold the same key.
        payload_keys=overrides.pop("payload_keys", [base64.b64encode(TEST_PAYLOAD_KEY).decode()]),
        **overrides,
    )


def jpeg_bytes(seed: str, size: tuple[int, int] = (64, 64)) -> bytes:
    """A real, unique JPEG (noise seeded per call) so no two sessions share a capture."""
    rnd = os.urandom(size[0] * size[1] * 3)
    image = Image.frombytes("RGB", size, rnd)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", comment=seed.encode())
    return buf.getvalue()


CAPTURE_KINDS = (ArtifactKind.selfie, ArtifactKind.id_front, ArtifactKind.liveness_video)


def store_capture(
    store: LocalEvidenceStore, session_id: str, scenario: str, nonce: str
) -> tuple[EvidenceSubmission, dict[ArtifactKind, bytes]]:
    """Put one capture round into the store; return the submission and the raw media."""
    media = {kind: jpeg_bytes(f"{session_id}:{kind}") for kind in CAPTURE_KINDS}
    refs = [store.put_bytes(kind, data, content_type="image/jpeg") for kind, data in media.items()]
    capture = CaptureMetadata(challenge_nonce=nonce, scenario=scenario)
    return EvidenceSubmission(artifacts=refs, capture=capture), media


def onboarding_request(settings: Settings, **overrides: Any) -> OnboardingRequest:
    fields: dict[str, Any] = {
        "session_id": f"s{uuid.uuid4().hex[:16]}",
        "tenant_id": "demo",
        "subject_ref": "user-42",
        "intent": "sign:contract-7",
        "reviewers": settings.reviewer_roster(),
        "timeouts": SessionTimeouts(
            capture_s=600,
            vendor_webhook_s=120,
            step_up_s=600,
            review_sla_s=3600,
            review_final_s=7200,
        ),
    }
    fields.update(overrides)
    return OnboardingRequest(**fields)


HISTORIES_DIR = Path(__file__).parent / "histories"


def decrypt_payloads(message: Message) -> None:
    """Replace every Payload inside a protobuf message (a history event) by its plaintext."""
    if isinstance(message, Payload):
        message.CopyFrom(payload_codec_for_tests().decrypt(message))
        return
    for item in sub_messages(message):
        decrypt_payloads(item)


def sub_messages(message: Message) -> Iterator[Message]:
    """The messages directly inside `message`: fields, repeated fields and map values."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            yield from (v for v in value.values() if isinstance(v, Message))
        elif field.is_repeated:
            yield from value
        else:
            yield value


async def record_history(handle: Any, name: str) -> None:
    """With SIGNGATE_RECORD_HISTORIES=1, save this run's history as a golden replay file.

    Golden histories are recorded once per workflow change that is meant to be
    incompatible, reviewed, and committed; the replay test keeps them green.
    """
    if os.environ.get("SIGNGATE_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    # Saved decrypted: a golden history is reviewed as text and replays without the key.
    for event in history.events:
        decrypt_payloads(event)
    HISTORIES_DIR.mkdir(exist_ok=True)
    (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS and JWK spell bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def attestation_claims(now: int, **changes: Any) -> AttestationClaims:
    """Well-formed claims of an accept decision issued at `now`, valid for 900 s.

    `changes` replace fields (a session id, the ledger entry the claims name).
    """
    fields: dict[str, Any] = {
        "sub": "user-42",
        "sid": "session-0001",
        "intent": "sign:nda",
        "decision": Action.accept,
        "tier": RiskTier.green,
        "ledger_seq": 1,
        "ledger_entry_hash": "a" * 64,
        "evidence_merkle_root": "b" * 64,
        "policy_id": "default",
        "policy_version": "1",
        "policy_sha256": "c" * 64,
        "iat": now,
        "exp": now + 900,
        "jti": "session-0001:aaaa",
    }
    return AttestationClaims(**{**fields, **changes})
