"""Every inbound scheme, behind one interface: valid, wrong secret, stale, rotation, malformed;
and the event log's vendor-time ordering, which survives reopening the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from signgate.settings import Settings, WebhookVendor
from signgate.webhook_verifiers import (
    OnfidoVerifier,
    PersonaVerifier,
    SigngateVerifier,
    WebhookVerifier,
    check_event_fresh,
    verifier_for,
)
from signgate.webhooks import WebhookEventLog, WebhookRejected

BODY = b'{"event_id":"evt_1","completed_at":1700000000}'
NOW = 1_700_000_000
NEW, OLD = "whsec-new", "whsec-old"
SCHEMES = ("signgate", "persona", "onfido")


def make(scheme: str, secrets: list[str]) -> WebhookVerifier:
    settings = Settings(webhook_secrets=["unused-default"], webhook_tolerance_s=300)
    return verifier_for(WebhookVendor(scheme=scheme, secrets=secrets), settings)  # type: ignore[arg-type]


def rejection(verifier: WebhookVerifier, headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(WebhookRejected) as raised:
        verifier.verify(headers, body, NOW)
    assert raised.value.http_status == 401
    return raised.value.reason


@pytest.mark.parametrize("scheme", SCHEMES)
def test_settings_choose_the_scheme(scheme: str) -> None:
    kinds = {"signgate": SigngateVerifier, "persona": PersonaVerifier, "onfido": OnfidoVerifier}
    assert isinstance(make(scheme, [NEW]), kinds[scheme])


def test_vendor_without_secrets_uses_webhook_secrets() -> None:
    settings = Settings(webhook_secrets=["from-settings"])
    verifier = verifier_for(WebhookVendor(), settings)
    verifier.verify(SigngateVerifier(["from-settings"], 300).sign(BODY, NOW), BODY, NOW)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_valid_signature_verifies(scheme: str) -> None:
    verifier = make(scheme, [NEW])
    signed_at = verifier.verify(verifier.sign(BODY, NOW), BODY, NOW)
    assert signed_at == (None if scheme == "onfido" else NOW)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wrong_secret_is_invalid(scheme: str) -> None:
    forged = make(scheme, ["whsec-attacker"]).sign(BODY, NOW)
    assert rejection(make(scheme, [NEW]), forged) == "webhook_signature_invalid"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_changed_body_is_invalid(scheme: str) -> None:
    verifier = make(scheme, [NEW])
    headers = verifier.sign(BODY, NOW)
    assert rejection(verifier, headers, BODY + b" ") == "webhook_signature_invalid"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_both_rotation_secrets_verify(scheme: str) -> None:
    receiver = make(scheme, [NEW, OLD])
    for sender_secret in (NEW, OLD):
        headers = make(scheme, [sender_secret]).sign(BODY, NOW)
        receiver.verify(headers, BODY, NOW)
    # And a retired secret no longer does.
    retired = make(scheme, ["whsec-retired"]).sign(BODY, NOW)
    assert rejection(receiver, retired) == "webhook_signature_invalid"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_missing_header_is_refused(scheme: str) -> None:
    assert rejection(make(scheme, [NEW]), {}) == "webhook_signature_missing"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_garbage_header_is_malformed(scheme: str) -> None:
    verifier = make(scheme, [NEW])
    assert rejection(verifier, {verifier.header: "t=abc,v1=zz"}) == "webhook_signature_malformed"


@pytest.mark.parametrize("scheme", ["signgate", "persona"])
def test_stale_signed_time_is_refused(scheme: str) -> None:
    verifier = make(scheme, [NEW])
    old = verifier.sign(BODY, NOW - 301)
    assert rejection(verifier, old) == "webhook_signature_stale"
    verifier.verify(verifier.sign(BODY, NOW - 299), BODY, NOW)


def test_stale_body_time_is_refused_for_a_scheme_that_signs_no_time() -> None:
    # The onfido-style header carries no time: the signed body's event time is judged.
    with pytest.raises(WebhookRejected) as raised:
        check_event_fresh(NOW - 86_401, NOW, 86_400)
    assert raised.value.reason == "webhook_signature_stale"
    check_event_fresh(NOW - 86_399, NOW, 86_400)


def test_persona_rotation_header_with_two_groups_verifies_with_either_secret() -> None:
    new = make("persona", [NEW]).sign(BODY, NOW)["Persona-Signature"]
    old = make("persona", [OLD]).sign(BODY, NOW)["Persona-Signature"]
    header = {"Persona-Signature": f"{old} {new}"}
    make("persona", [NEW]).verify(header, BODY, NOW)
    make("persona", [OLD]).verify(header, BODY, NOW)


def test_signgate_scheme_is_the_one_sign_webhook_makes() -> None:
    from signgate.webhooks import sign_webhook

    verifier = make("signgate", [NEW])
    assert verifier.sign(BODY, NOW) == {"X-Signature": sign_webhook(NEW, BODY, NOW)}


# --------------------------------------------------------------------------- ordering


def test_older_event_for_a_vendor_ref_is_superseded_after_a_newer_one(tmp_path: Path) -> None:
    log = WebhookEventLog(tmp_path / "gateway.sqlite3")
    assert not log.superseded("sandbox:ref_1", NOW)
    log.record("evt_new", "sess_0001", "sandbox:ref_1", NOW)
    assert log.superseded("sandbox:ref_1", NOW - 1)
    assert not log.superseded("sandbox:ref_1", NOW)
    assert not log.superseded("sandbox:ref_2", NOW - 1)


def test_ordering_never_moves_back_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    WebhookEventLog(path).record("evt_new", "sess_0001", "sandbox:ref_1", NOW)
    WebhookEventLog(path).record("evt_old", "sess_0001", "sandbox:ref_1", NOW - 60)
    reopened = WebhookEventLog(path)
    assert reopened.superseded("sandbox:ref_1", NOW - 1)
    assert reopened.seen("evt_old") and reopened.seen("evt_new")


def test_signgate_scheme_reports_the_signed_time_whatever_the_part_order() -> None:
    verifier = make("signgate", [NEW])
    t_part, v1_part = verifier.sign(BODY, NOW - 10)["X-Signature"].split(",")
    assert verifier.verify({"X-Signature": f"{v1_part},{t_part}"}, BODY, NOW) == NOW - 10
