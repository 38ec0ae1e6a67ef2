"""Webhook signatures prove origin, integrity and freshness; the event log applies an event once."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from signgate.errors import BadInput
from signgate.models import CheckKind, CheckStatus
from signgate.vendor_api import (
    make_reference,
    parse_vendor_webhook,
    session_id_from_reference,
    to_check_result,
)
from signgate.webhooks import WebhookEventLog, WebhookRejected, sign_webhook, verify_webhook

SECRET = "whsec-current"
BODY = b'{"event_id":"evt_1","result":{"risk_score":0.03}}'
NOW = 1_700_000_000


def reason_of(header: str | None, body: bytes = BODY, tolerance_s: int = 300) -> str:
    with pytest.raises(WebhookRejected) as raised:
        verify_webhook(header, body, [SECRET], NOW, tolerance_s)
    assert raised.value.http_status == 401
    return raised.value.reason


def test_signature_made_with_the_secret_verifies() -> None:
    header = sign_webhook(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    verify_webhook(header, BODY, [SECRET], NOW)


def test_signature_made_with_another_secret_is_invalid() -> None:
    assert reason_of(sign_webhook("whsec-attacker", BODY, NOW)) == "webhook_signature_invalid"


def test_signature_with_the_rotated_in_second_secret_verifies() -> None:
    header = sign_webhook("whsec-next", BODY, NOW)
    verify_webhook(header, BODY, [SECRET, "whsec-next"], NOW)


def test_any_of_several_v1_entries_may_match() -> None:
    old = sign_webhook("whsec-retired", BODY, NOW)
    new = sign_webhook(SECRET, BODY, NOW)
    header = f"{old},v1={new.split('v1=')[1]}"
    verify_webhook(header, BODY, [SECRET], NOW)


def test_body_changed_by_one_byte_is_invalid() -> None:
    header = sign_webhook(SECRET, BODY, NOW)
    tampered = BODY.replace(b"0.03", b"0.02")
    assert len(tampered) == len(BODY) and tampered != BODY
    assert reason_of(header, tampered) == "webhook_signature_invalid"


def test_timestamp_cannot_be_moved_without_breaking_the_signature() -> None:
    signature = sign_webhook(SECRET, BODY, NOW - 3600).split("v1=")[1]
    assert reason_of(f"t={NOW},v1={signature}") == "webhook_signature_invalid"


@pytest.mark.parametrize("offset_s", [-301, 301, -86_400, 86_400])
def test_timestamp_outside_tolerance_is_stale_in_the_past_and_future(offset_s: int) -> None:
    header = sign_webhook(SECRET, BODY, NOW + offset_s)
    assert reason_of(header, tolerance_s=300) == "webhook_signature_stale"


@pytest.mark.parametrize("offset_s", [-300, 300])
def test_timestamp_at_the_tolerance_edge_is_still_fresh(offset_s: int) -> None:
    verify_webhook(sign_webhook(SECRET, BODY, NOW + offset_s), BODY, [SECRET], NOW, 300)


def test_stale_is_only_said_of_an_authentic_signature() -> None:
    header = sign_webhook("whsec-attacker", BODY, NOW - 86_400)
    assert reason_of(header) == "webhook_signature_invalid"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_absent_header_is_missing(header: str | None) -> None:
    assert reason_of(header) == "webhook_signature_missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=1700000000",  # no signature
        "v1=" + "a" * 64,  # no timestamp
        f"t=1700000000,t=1700000001,v1={'a' * 64}",  # two timestamps
        f"t=-1700000000,v1={'a' * 64}",
        f"t=17e8,v1={'a' * 64}",
        "t=1700000000,v1=abc",  # too short
        f"t=1700000000,v1={'g' * 64}",  # not hex
        f"t=1700000000,v1={'a' * 64},junk",
        f"t=1700000000,{'v1=' + 'a' * 64 + ','}" * 200,  # oversized
    ],
)
def test_malformed_header_is_refused_as_malformed(header: str) -> None:
    assert reason_of(header) == "webhook_signature_malformed"


def test_unknown_scheme_entries_are_ignored_for_forward_compatibility() -> None:
    header = sign_webhook(SECRET, BODY, NOW) + ",v2=whatever"
    verify_webhook(header, BODY, [SECRET], NOW)


# --------------------------------------------------------------------------- event log


def test_event_recorded_once_then_reported_as_seen(tmp_path: Path) -> None:
    log = WebhookEventLog(tmp_path / "gateway.sqlite3")
    assert not log.seen("evt_1")
    assert log.record("evt_1", "sess_0001") is True
    assert log.seen("evt_1")
    assert log.record("evt_1", "sess_0001") is False
    assert not log.seen("evt_2")


def test_replayed_event_is_seen_after_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "gateway.sqlite3"
    assert WebhookEventLog(path).record("evt_1", "sess_0001") is True
    reopened = WebhookEventLog(path)
    assert reopened.seen("evt_1")
    assert reopened.record("evt_1", "sess_0001") is False


def test_concurrent_threads_record_an_event_exactly_once(tmp_path: Path) -> None:
    log = WebhookEventLog(tmp_path / "gateway.sqlite3")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: log.record("evt_race", "sess_0001"), range(32)))
    assert outcomes.count(True) == 1


def _record_in_child(path: Path, event_id: str) -> bool:
    return WebhookEventLog(path).record(event_id, "sess_0001")


def test_concurrent_processes_record_an_event_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    WebhookEventLog(path)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = pool.starmap(_record_in_child, [(path, "evt_race")] * 8, chunksize=1)
    assert outcomes.count(True) == 1


# --------------------------------------------------------------------------- webhook body


def webhook_json(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "evt_1",
        "vendor_ref": "sbx_1",
        "reference": "sess_0001:1:deepfake",
        "check": "deepfake",
        "completed_at": NOW,
        "result": {
            "check": "deepfake",
            "risk_score": 0.97,
            "confidence": 0.97,
            "attack_hints": ["synthetic"],
            "model_version": "m-1",
        },
    }
    return json.dumps(body | overrides).encode()


def test_vendor_webhook_body_parses_into_a_completed_check_result() -> None:
    event = parse_vendor_webhook(webhook_json(future_field="ignored"))
    result = to_check_result(event.result, "sandbox", 12, "c" * 64)
    assert session_id_from_reference(event.reference) == "sess_0001"
    assert result.status is CheckStatus.completed and result.kind is CheckKind.deepfake
    assert (result.risk_score, result.attack_hints) == (0.97, ["synthetic"])
    assert (result.provider, result.latency_ms, result.raw_response_sha256) == (
        "sandbox",
        12,
        "c" * 64,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"\xff\xfe\x00",
        b"[]",
        webhook_json(result=None),
        webhook_json(check="palmistry"),
        webhook_json(
            result={"check": "deepfake", "risk_score": 1.5, "confidence": 1, "model_version": "m"}
        ),
    ],
)
def test_garbage_webhook_body_is_refused_as_invalid(body: bytes) -> None:
    with pytest.raises(BadInput) as raised:
        parse_vendor_webhook(body)
    assert raised.value.reason == "webhook_body_invalid"


def test_reference_round_trips_to_its_session() -> None:
    reference = make_reference("sess_0001", 3, CheckKind.face_match)
    assert reference == "sess_0001:3:face_match"
    assert session_id_from_reference(reference) == "sess_0001"


@pytest.mark.parametrize(
    "reference",
    ["sess_0001", "sess_0001:1", ":1:liveness", "s:x:liveness", "s:1:palm", "a:b:1:liveness"],
)
def test_reference_not_in_our_format_is_refused(reference: str) -> None:
    with pytest.raises(BadInput) as raised:
        session_id_from_reference(reference)
    assert raised.value.reason == "vendor_reference_invalid"
