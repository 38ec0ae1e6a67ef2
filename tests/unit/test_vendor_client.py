"""The vendor adapter against the real sandbox (and a misbehaving vendor) over loopback HTTP:
every answer becomes the right CheckOutcome, every failure the right retryable-or-not error,
and no failure ever becomes a score."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response

from signgate.errors import BadInput, Fault
from signgate.models import (
    ArtifactKind,
    ArtifactRef,
    CaptureMetadata,
    CheckKind,
    CheckOutcome,
    CheckRequest,
    CheckStatus,
)
from signgate.sandbox import create_sandbox_app
from signgate.vendor_api import CHECKS_PATH, VendorArtifact, VendorCheckRequest
from signgate.vendor_client import (
    VendorBadResponse,
    VendorClient,
    VendorRejected,
    VendorUnavailable,
)
from tests.support import serve_app

SECRET = "whsec-unit"
API_KEY = "sandbox-unit-key"
CALLBACK = "http://127.0.0.1:9/never-called"  # pending answers here are not delivered to


def check_request(kind: CheckKind, scenario: str | None) -> CheckRequest:
    return CheckRequest(
        session_id="sess_unit_0001",
        tenant_id="demo",
        round=1,
        kind=kind,
        artifacts=[
            ArtifactRef(
                kind=ArtifactKind.selfie,
                sha256="a" * 64,
                size_bytes=1234,
                content_type="image/jpeg",
                object_key="evidence/aa/" + "a" * 64,
            )
        ],
        capture=CaptureMetadata(challenge_nonce="nonce-1", scenario=scenario),
        merkle_root="b" * 64,
    )


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def sandbox_url() -> AsyncIterator[str]:
    # The webhook delay is long: these tests look at the 202, not at deliveries.
    app = create_sandbox_app(SECRET, API_KEY, webhook_delay_s=60)
    async with serve_app(app) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def slow_sandbox_url() -> AsyncIterator[str]:
    latency = {CheckKind.deepfake: 250, CheckKind.provenance: 1500}
    async with serve_app(create_sandbox_app(SECRET, API_KEY, latency_ms=latency)) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def vendor(sandbox_url: str) -> AsyncIterator[VendorClient]:
    async with VendorClient(sandbox_url, API_KEY, timeout_s=5) as client:
        yield client


def completed(outcome: CheckOutcome, kind: CheckKind) -> tuple[float, float, list[str]]:
    assert outcome.state == "completed" and outcome.vendor_ref is None
    result = outcome.result
    assert result is not None
    assert result.kind is kind and result.status is CheckStatus.completed
    assert result.provider == "sandbox" and result.model_version == "sandbox-1.0"
    assert result.risk_score is not None and result.confidence is not None
    return result.risk_score, result.confidence, result.attack_hints


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("scenario", ["bona_fide", None])
@pytest.mark.parametrize("kind", list(CheckKind))
async def test_bona_fide_and_default_complete_every_check_with_low_risk(
    vendor: VendorClient, kind: CheckKind, scenario: str | None
) -> None:
    risk, confidence, hints = completed(
        await vendor.submit_check(check_request(kind, scenario), None), kind
    )
    assert 0.02 <= risk <= 0.06
    assert confidence >= 0.9
    assert hints == []


@pytest.mark.parametrize(
    ("scenario", "kind", "risk", "hints"),
    [
        ("deepfake", CheckKind.deepfake, 0.97, ["synthetic"]),
        ("deepfake", CheckKind.liveness, 0.35, []),
        ("deepfake", CheckKind.face_match, 0.05, []),
        ("borderline", CheckKind.liveness, 0.45, []),
        ("borderline", CheckKind.deepfake, 0.40, []),
        ("borderline", CheckKind.face_match, 0.50, []),
        ("borderline", CheckKind.device, 0.30, []),
        ("borderline", CheckKind.provenance, 0.20, []),
        ("poor_capture", CheckKind.liveness, 0.5, ["capture_quality"]),
        ("poor_capture", CheckKind.deepfake, 0.04, []),
        ("virtual_camera", CheckKind.device, 0.95, ["virtual_camera"]),
        ("virtual_camera", CheckKind.liveness, 0.03, []),
    ],
)
async def test_scenario_result_reaches_the_check_result_unchanged(
    vendor: VendorClient, scenario: str, kind: CheckKind, risk: float, hints: list[str]
) -> None:
    got_risk, _, got_hints = completed(
        await vendor.submit_check(check_request(kind, scenario), None), kind
    )
    assert got_risk == pytest.approx(risk)
    assert got_hints == hints


async def test_deepfake_is_reported_with_high_confidence(vendor: VendorClient) -> None:
    outcome = await vendor.submit_check(check_request(CheckKind.deepfake, "deepfake"), None)
    assert completed(outcome, CheckKind.deepfake)[1] == pytest.approx(0.97)


async def test_poor_capture_explains_how_to_retry(vendor: VendorClient) -> None:
    outcome = await vendor.submit_check(check_request(CheckKind.liveness, "poor_capture"), None)
    assert outcome.result is not None
    assert any("retry" in line for line in outcome.result.explanations)


async def test_result_records_the_hash_of_the_raw_vendor_response(
    vendor: VendorClient, sandbox_url: str
) -> None:
    request = check_request(CheckKind.face_match, "borderline")
    outcome = await vendor.submit_check(request, None)
    wire = VendorCheckRequest(
        check=request.kind,
        reference="sess_unit_0001:1:face_match",
        artifacts=[VendorArtifact.of(a) for a in request.artifacts],
        scenario="borderline",
    )
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        raw = await http.post(
            CHECKS_PATH,
            content=wire.model_dump_json(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
    assert outcome.result is not None
    assert outcome.result.raw_response_sha256 == hashlib.sha256(raw.content).hexdigest()


@pytest.mark.parametrize("scenario", ["slow_webhook", "no_webhook"])
async def test_webhook_scenarios_answer_pending_with_a_vendor_ref(
    vendor: VendorClient, scenario: str
) -> None:
    outcome = await vendor.submit_check(check_request(CheckKind.liveness, scenario), CALLBACK)
    assert outcome.state == "pending" and outcome.result is None
    assert outcome.vendor_ref is not None and outcome.vendor_ref.startswith("sbx_")


async def test_each_pending_check_gets_its_own_vendor_ref(vendor: VendorClient) -> None:
    request = check_request(CheckKind.device, "slow_webhook")
    first = await vendor.submit_check(request, CALLBACK)
    second = await vendor.submit_check(request, CALLBACK)
    assert first.vendor_ref != second.vendor_ref


async def test_latency_is_measured_around_the_vendor_call(slow_sandbox_url: str) -> None:
    async with VendorClient(slow_sandbox_url, API_KEY, timeout_s=5) as vendor:
        outcome = await vendor.submit_check(check_request(CheckKind.deepfake, None), None)
    assert outcome.result is not None
    assert 250 <= outcome.result.latency_ms < 5000


# --------------------------------------------------------------------------- failures


async def test_vendor_down_is_unavailable_and_retryable(vendor: VendorClient) -> None:
    with pytest.raises(VendorUnavailable) as raised:
        await vendor.submit_check(check_request(CheckKind.liveness, "vendor_down"), None)
    assert raised.value.reason == "vendor_unavailable"
    assert isinstance(raised.value, Fault)


async def test_garbage_answer_is_a_bad_response_and_retryable(vendor: VendorClient) -> None:
    with pytest.raises(VendorBadResponse) as raised:
        await vendor.submit_check(check_request(CheckKind.deepfake, "garbage"), None)
    assert raised.value.reason == "vendor_bad_response"
    assert isinstance(raised.value, Fault)


async def test_wrong_api_key_is_rejected_and_not_retryable(sandbox_url: str) -> None:
    async with VendorClient(sandbox_url, "not-the-key", timeout_s=5) as vendor:
        with pytest.raises(VendorRejected) as raised:
            await vendor.submit_check(check_request(CheckKind.liveness, None), None)
    assert raised.value.reason == "vendor_rejected"
    assert isinstance(raised.value, BadInput) and not isinstance(raised.value, Fault)
    assert "401" in raised.value.message


async def test_unknown_scenario_is_rejected_not_treated_as_bona_fide(vendor: VendorClient) -> None:
    with pytest.raises(VendorRejected, match="422"):
        await vendor.submit_check(check_request(CheckKind.liveness, "bona_fied"), None)


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        async with VendorClient(f"http://127.0.0.1:{port}", API_KEY, timeout_s=5) as vendor:
            with pytest.raises(VendorUnavailable, match="ConnectError"):
                await vendor.submit_check(check_request(CheckKind.liveness, None), None)


async def test_vendor_slower_than_the_timeout_is_unavailable(slow_sandbox_url: str) -> None:
    async with VendorClient(slow_sandbox_url, API_KEY, timeout_s=0.3) as vendor:
        with pytest.raises(VendorUnavailable, match="within 0.3s"):
            await vendor.submit_check(check_request(CheckKind.provenance, None), None)


# A vendor that answers in every wrong way the sandbox does not script; `scenario` picks one.
MISBEHAVIOURS: dict[str, tuple[int, str, bytes]] = {
    "risk_out_of_range": (
        200,
        "application/json",
        b'{"status":"completed","result":{"check":"liveness","risk_score":1.7,'
        b'"confidence":0.9,"model_version":"m"}}',
    ),
    "missing_score": (
        200,
        "application/json",
        b'{"status":"completed","result":{"check":"liveness","confidence":0.9,'
        b'"model_version":"m"}}',
    ),
    "other_check": (
        200,
        "application/json",
        b'{"status":"completed","result":{"check":"deepfake","risk_score":0.1,'
        b'"confidence":0.9,"model_version":"m"}}',
    ),
    "pending_with_200": (200, "application/json", b'{"status":"pending","vendor_ref":"v1"}'),
    "completed_with_202": (
        202,
        "application/json",
        b'{"status":"completed","result":{"check":"liveness","risk_score":0.1,'
        b'"confidence":0.9,"model_version":"m"}}',
    ),
    "json_not_json": (200, "application/json", b"{not json"),
    "empty_200": (200, "application/json", b""),
    "redirect": (302, "text/plain", b""),
}
TRANSIENT = {
    "rate_limited": (429, "application/json", b"{}"),
    "bad_gateway": (502, "text/html", b"<html/>"),
}
REFUSED = {"bad_request": (400, "application/json", b'{"detail":"artifacts"}')}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rogue_vendor_url() -> AsyncIterator[str]:
    app = FastAPI()
    answers = MISBEHAVIOURS | TRANSIENT | REFUSED

    @app.post(CHECKS_PATH)
    async def answer(request: Request) -> Response:
        status, content_type, body = answers[(await request.json())["scenario"]]
        return Response(body, status_code=status, media_type=content_type)

    async with serve_app(app) as url:
        yield url


@pytest.mark.parametrize("misbehaviour", list(MISBEHAVIOURS))
async def test_invalid_answer_is_a_bad_response_never_a_score(
    rogue_vendor_url: str, misbehaviour: str
) -> None:
    async with VendorClient(rogue_vendor_url, API_KEY, timeout_s=5, provider="rogue") as vendor:
        with pytest.raises(VendorBadResponse):
            await vendor.submit_check(check_request(CheckKind.liveness, misbehaviour), None)


@pytest.mark.parametrize("answer", list(TRANSIENT))
async def test_rate_limit_and_gateway_errors_are_unavailable(
    rogue_vendor_url: str, answer: str
) -> None:
    async with VendorClient(rogue_vendor_url, API_KEY, timeout_s=5) as vendor:
        with pytest.raises(VendorUnavailable):
            await vendor.submit_check(check_request(CheckKind.liveness, answer), None)


async def test_bad_request_is_rejected(rogue_vendor_url: str) -> None:
    async with VendorClient(rogue_vendor_url, API_KEY, timeout_s=5) as vendor:
        with pytest.raises(VendorRejected, match="400"):
            await vendor.submit_check(check_request(CheckKind.liveness, "bad_request"), None)
