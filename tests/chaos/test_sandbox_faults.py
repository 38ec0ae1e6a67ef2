"""The sandbox's chaos scenarios against the real vendor adapter over loopback HTTP: each
fault becomes the error the saga turns into an unavailable or errored check, never a
score; `flaky_vendor` answers on the second attempt; fixed latencies are honoured."""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from signgate.models import CheckKind
from signgate.sandbox import create_sandbox_app
from signgate.sandbox.__main__ import parse_latencies
from signgate.vendor_client import VendorBadResponse, VendorClient, VendorUnavailable
from tests.support import serve_app
from tests.unit.test_vendor_client import check_request

API_KEY = "sandbox-chaos-key"


@pytest_asyncio.fixture(loop_scope="session")
async def vendor() -> AsyncIterator[VendorClient]:
    app = create_sandbox_app("whsec-chaos", API_KEY, latency_ms={CheckKind.device: 300}, hang_s=2.0)
    async with serve_app(app) as url, VendorClient(url, API_KEY, timeout_s=0.5) as client:
        yield client


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        ("garbage_json", VendorBadResponse),
        ("wrong_content_type", VendorBadResponse),
        ("vendor_hangs", VendorUnavailable),
    ],
)
async def test_a_misbehaving_vendor_is_an_error_never_a_score(
    vendor: VendorClient, scenario: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await vendor.submit_check(check_request(CheckKind.liveness, scenario), None)


async def test_flaky_vendor_fails_once_per_check_then_answers(vendor: VendorClient) -> None:
    request = check_request(CheckKind.deepfake, "flaky_vendor")
    with pytest.raises(VendorUnavailable):
        await vendor.submit_check(request, None)
    outcome = await vendor.submit_check(request, None)
    assert outcome.state == "completed" and outcome.result is not None
    assert outcome.result.kind is CheckKind.deepfake


async def test_a_fixed_latency_holds_back_its_check(vendor: VendorClient) -> None:
    started = time.perf_counter()
    outcome = await vendor.submit_check(check_request(CheckKind.device, "bona_fide"), None)
    assert time.perf_counter() - started >= 0.3  # a lower bound: no speed is measured here
    assert outcome.state == "completed" and outcome.result is not None
    assert outcome.result.latency_ms >= 300


def test_latencies_parse_from_the_command_line() -> None:
    assert parse_latencies("liveness=200, deepfake=400") == {
        CheckKind.liveness: 200,
        CheckKind.deepfake: 400,
    }
    with pytest.raises(argparse.ArgumentTypeError):
        parse_latencies("lifeness=200")
