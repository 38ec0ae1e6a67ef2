"""`signgate.client` against the real gateway: each call an onboarding app makes."""

from __future__ import annotations

import hashlib

import pytest

from signgate.attestation import AttestationInvalid
from signgate.client import GatewayClient, GatewayError, SessionCreated
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, CaptureMetadata, Stage
from signgate.signer import KeyRing, Signer
from tests.gateway.conftest import APP_KEY, GatewayStack, capture_media
from tests.support import CAPTURE_KINDS, jpeg_bytes


async def onboard(app: GatewayClient, scenario: str, **extra: str) -> SessionCreated:
    created = await app.start_session("user-42", "sign:nda", **extra)
    refs = [
        await app.upload(
            created.session_id,
            kind,
            capture_media(created.session_id, kind),
            "video/mp4" if kind is ArtifactKind.liveness_video else "image/jpeg",
        )
        for kind in CAPTURE_KINDS
    ]
    capture = CaptureMetadata(challenge_nonce=created.challenge_nonce, scenario=scenario)
    await app.submit(created.session_id, refs, capture)
    return created


async def test_start_session_is_typed_and_answers_the_challenge(gw: GatewayStack) -> None:
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        created = await app.start_session("user-42", "sign:nda")
    assert isinstance(created, SessionCreated)
    assert created.stage is Stage.awaiting_capture
    assert created.workflow_id == f"onboarding-{created.session_id}"
    assert len(created.challenge_nonce) >= 16


async def test_a_retried_create_with_its_key_finds_the_same_session(gw: GatewayStack) -> None:
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        first = await app.start_session("user-42", "sign:nda", idempotency_key="create-1")
        again = await app.start_session("user-42", "sign:nda", idempotency_key="create-1")
        other = await app.start_session("user-42", "sign:nda")
        with pytest.raises(GatewayError) as changed:  # same key, another body
            await app.start_session("user-43", "sign:nda", idempotency_key="create-1")
    assert again.session_id == first.session_id
    assert other.session_id != first.session_id
    assert changed.value.status_code == 409


async def test_upload_returns_the_content_addressed_ref(gw: GatewayStack) -> None:
    data = jpeg_bytes("client-upload")
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        created = await app.start_session("user-42", "sign:nda")
        ref = await app.upload(created.session_id, ArtifactKind.selfie, data, "image/jpeg")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size_bytes == len(data)
    assert gw.deps.store.exists(ref.object_key)


async def test_an_accepted_session_yields_a_verified_attestation(gw: GatewayStack) -> None:
    keyring = KeyRing.from_dir(gw.settings.keys_dir)
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        created = await onboard(app, "bona_fide")
        status = await app.wait_for_decision(created.session_id, timeout_s=60)
        assert status.stage is Stage.accepted
        claims = await app.verified_attestation(
            created.session_id, keyring, ledger=SqliteLedger(gw.settings.ledger_path, None)
        )
        assert claims.sid == created.session_id
        assert claims.ledger_seq == status.decision_receipt.seq  # type: ignore[union-attr]

        stranger = KeyRing.from_pems(
            [Signer.load_or_create(gw.settings.var_dir / "other").public_key_pem()]
        )
        with pytest.raises(AttestationInvalid) as refused:
            await app.verified_attestation(created.session_id, stranger)
        assert refused.value.reason == "attestation_unknown_key"


async def test_a_shadow_attestation_does_not_gate_signing(gw: GatewayStack) -> None:
    keyring = KeyRing.from_dir(gw.settings.keys_dir)
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        created = await onboard(app, "deepfake", mode="shadow")
        await app.wait_for_decision(created.session_id, timeout_s=60)
        with pytest.raises(AttestationInvalid) as refused:
            await app.verified_attestation(created.session_id, keyring)
    assert refused.value.reason == "attestation_not_enforced_accept"


async def test_waiting_can_stop_at_review_and_is_bounded(gw: GatewayStack) -> None:
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        created = await onboard(app, "borderline")
        status = await app.wait_for_decision(created.session_id, include_review=True, timeout_s=60)
        assert status.stage is Stage.awaiting_review
        with pytest.raises(TimeoutError, match="not decided within 0.5 s"):
            await app.wait_for_decision(created.session_id, timeout_s=0.5)


async def test_refusals_carry_the_gateway_reason(gw: GatewayStack) -> None:
    async with GatewayClient(gw.base_url, APP_KEY) as app:
        with pytest.raises(GatewayError) as missing:
            await app.status("no-such-session-123")
        with pytest.raises(GatewayError) as locked:
            created = await app.start_session("user-42", "sign:nda")
            await app.attestation(created.session_id)
    assert (missing.value.status_code, missing.value.reason) == (404, "session_not_found")
    assert (locked.value.status_code, locked.value.reason) == (409, "not_unlocked")
