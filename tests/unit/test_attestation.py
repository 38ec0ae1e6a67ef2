"""The signing attestation: compact JWS, EdDSA, verified offline against public keys only."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from signgate.attestation import (
    AttestationInvalid,
    issue_attestation,
    verify_attestation,
)
from signgate.canonical import canonical_json
from signgate.models import Action, AttestationClaims
from signgate.signer import KeyRing, Signer
from tests.support import attestation_claims, b64url, unb64url

NOW = 1_700_000_000


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def keyring(signer: Signer) -> KeyRing:
    return KeyRing.from_pems([signer.public_key_pem()])


@pytest.fixture
def claims() -> AttestationClaims:
    return attestation_claims(NOW, intent="sign:contract-7", ledger_seq=7)


def reason_of(token: str, keyring: KeyRing, now: int = NOW) -> str:
    with pytest.raises(AttestationInvalid) as err:
        verify_attestation(token, keyring, now=now)
    return err.value.reason


def test_round_trip_returns_the_claims(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims
) -> None:
    token = issue_attestation(signer, claims)
    assert verify_attestation(token, keyring, now=NOW) == claims


def test_header_names_alg_kid_and_type_and_payload_is_canonical(
    signer: Signer, claims: AttestationClaims
) -> None:
    header, payload, _ = issue_attestation(signer, claims).split(".")
    assert json.loads(unb64url(header)) == {
        "alg": "EdDSA",
        "kid": signer.key_id,
        "typ": "signgate-attestation+jws",
    }
    assert unb64url(payload) == canonical_json(claims)


def test_signature_is_plain_ed25519_over_the_signing_input(
    signer: Signer, claims: AttestationClaims
) -> None:
    # What a relying party without joserfc would check.
    header, payload, signature = issue_attestation(signer, claims).split(".")
    signer.public_key.verify(unb64url(signature), f"{header}.{payload}".encode())


def test_issuing_and_verifying_emit_no_security_warning(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verify_attestation(issue_attestation(signer, claims), keyring, now=NOW)


def test_tampered_payload_is_signature_invalid(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims
) -> None:
    header, _, signature = issue_attestation(signer, claims).split(".")
    forged = claims.model_copy(update={"decision": Action.accept, "sub": "someone-else"})
    token = f"{header}.{b64url(canonical_json(forged))}.{signature}"
    assert reason_of(token, keyring) == "attestation_signature_invalid"


def test_signed_by_another_key_under_our_kid_is_signature_invalid(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims, tmp_path: Path
) -> None:
    impostor = Signer.load_or_create(tmp_path / "impostor")
    _, payload, signature = issue_attestation(impostor, claims).split(".")
    header = b64url(
        json.dumps({"alg": "EdDSA", "kid": signer.key_id, "typ": "signgate-attestation+jws"})
        .replace(" ", "")
        .encode()
    )
    assert reason_of(f"{header}.{payload}.{signature}", keyring) == (
        "attestation_signature_invalid"
    )


def test_unknown_kid_is_unknown_key(
    keyring: KeyRing, claims: AttestationClaims, tmp_path: Path
) -> None:
    stranger = Signer.load_or_create(tmp_path / "stranger")
    token = issue_attestation(stranger, claims)
    assert reason_of(token, keyring) == "attestation_unknown_key"


def test_expired_at_exp_and_after(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims
) -> None:
    token = issue_attestation(signer, claims)
    assert verify_attestation(token, keyring, now=claims.exp - 1) == claims
    assert reason_of(token, keyring, now=claims.exp) == "attestation_expired"
    assert reason_of(token, keyring, now=claims.exp + 3600) == "attestation_expired"


def test_default_clock_is_now(signer: Signer, keyring: KeyRing, claims: AttestationClaims) -> None:
    token = issue_attestation(signer, claims)  # exp in 2023
    with pytest.raises(AttestationInvalid) as err:
        verify_attestation(token, keyring)
    assert err.value.reason == "attestation_expired"


@pytest.mark.parametrize("token", ["", "a.b", "not-a-token", "a.b.c.d", "é.é.é"])
def test_garbage_is_malformed(keyring: KeyRing, token: str) -> None:
    assert reason_of(token, keyring) == "attestation_malformed"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "signgate-attestation+jws"},
        {"alg": "HS256", "kid": "x", "typ": "signgate-attestation+jws"},
        {"alg": "EdDSA", "kid": "x", "typ": "JWT"},
    ],
)
def test_other_algorithms_and_types_are_malformed(
    signer: Signer, keyring: KeyRing, claims: AttestationClaims, header: dict[str, str]
) -> None:
    header = {**header, "kid": signer.key_id} if "kid" in header else header
    encoded = b64url(json.dumps(header).encode())
    token = f"{encoded}.{b64url(canonical_json(claims))}."
    assert reason_of(token, keyring) == "attestation_malformed"


def test_genuinely_signed_payload_that_is_not_claims_is_malformed(
    signer: Signer, keyring: KeyRing
) -> None:
    header = b64url(
        json.dumps({"alg": "EdDSA", "kid": signer.key_id, "typ": "signgate-attestation+jws"})
        .replace(" ", "")
        .encode()
    )
    payload = b64url(b'{"sub":"x"}')
    signature = b64url(signer.sign(f"{header}.{payload}".encode()))
    assert reason_of(f"{header}.{payload}.{signature}", keyring) == "attestation_malformed"
