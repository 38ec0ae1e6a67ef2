"""Signing key rotation: new entries and attestations carry the new key id, everything
signed before still verifies, and the JWK Set alone is enough to verify an attestation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from activities.deps import ActivityDeps
from signgate.attestation import AttestationInvalid, issue_attestation, verify_attestation
from signgate.jwks import JwksInvalid, jwks_of, keyring_from_jwks
from signgate.ledger import SqliteLedger
from signgate.models import AttestationClaims, LedgerReceipt
from signgate.settings import Settings
from signgate.signer import (
    PRIVATE_SUFFIX,
    PUBLIC_SUFFIX,
    KeyRing,
    Signer,
    rotate_signing_key,
    signing_key_names,
)
from signgate.verification import verify_attestation_with_ledger
from tests.support import attestation_claims, unb64url

# Issue time of every attestation here; verified `now=NOW`, so a slow suite (this module
# imported long before it runs) cannot expire them.
NOW = int(time.time())


def signgate_cli(settings: Settings, *args: str) -> dict[str, Any]:
    env = {**os.environ, "SIGNGATE_VAR_DIR": str(settings.var_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def decide_and_attest(deps: ActivityDeps, session_id: str) -> tuple[LedgerReceipt, str]:
    """A decision entry and the attestation naming it, signed as the worker signs them."""
    receipt = deps.ledger.append(session_id, "decision", f"{session_id}:decision", {"a": 1})
    claims = attestation_claims(
        NOW,
        sid=session_id,
        ledger_seq=receipt.seq,
        ledger_entry_hash=receipt.entry_hash,
        jti=f"{session_id}:jti",
    )
    return receipt, issue_attestation(deps.signer, claims)


async def test_after_rotation_new_entries_carry_the_new_kid_and_old_ones_still_verify(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    before = ActivityDeps.from_settings(settings)
    old_receipt, old_token = decide_and_attest(before, "sess-before-rotation")
    await before.aclose()

    rotated = signgate_cli(settings, "signing-key", "rotate")
    after = ActivityDeps.from_settings(settings)  # a worker (re)started after the rotation
    try:
        new_receipt, new_token = decide_and_attest(after, "sess-after-rotation")
    finally:
        await after.aclose()

    old_kid = before.signer.key_id
    new_kid = rotated["active_key_id"]
    assert new_kid != old_kid
    assert after.signer.key_id == new_kid
    assert (old_receipt.key_id, new_receipt.key_id) == (old_kid, new_kid)
    assert json.loads(_header(old_token))["kid"] == old_kid
    assert json.loads(_header(new_token))["kid"] == new_kid

    ring = KeyRing.from_dir(settings.keys_dir)
    ledger = SqliteLedger(settings.ledger_path, None)
    report = ledger.verify(ring)
    assert report.ok and report.entries_checked == 2
    for token in (old_token, new_token):
        verify_attestation_with_ledger(token, ring, ledger, now=NOW)

    listed = signgate_cli(settings, "signing-key", "list")["keys"]
    assert {(k["key_id"], k["state"]) for k in listed} == {
        (old_kid, "verify-only"),
        (new_kid, "active"),
    }


def test_rotation_retires_the_old_private_key_and_keeps_its_public_key(tmp_path: Path) -> None:
    first = Signer.load_active(tmp_path)
    second = rotate_signing_key(tmp_path)
    assert Signer.load_active(tmp_path).key_id == second.key_id
    [holding_private] = signing_key_names(tmp_path)
    assert holding_private.startswith("signgate-")
    assert not (tmp_path / f"signgate{PRIVATE_SUFFIX}").exists()
    assert (tmp_path / f"signgate{PUBLIC_SUFFIX}").exists()
    assert set(KeyRing.from_dir(tmp_path).key_ids) == {first.key_id, second.key_id}
    third = rotate_signing_key(tmp_path)
    assert len({first.key_id, second.key_id, third.key_id}) == 3
    assert len(signing_key_names(tmp_path)) == 1
    assert len(KeyRing.from_dir(tmp_path)) == 3


def test_an_attestation_verifies_from_the_jwks_alone(tmp_path: Path) -> None:
    old = Signer.load_active(tmp_path)
    old_token = issue_attestation(old, _claims())
    new = rotate_signing_key(tmp_path)
    new_token = issue_attestation(new, _claims())

    document = json.loads(json.dumps(jwks_of(KeyRing.from_dir(tmp_path))))  # as published
    assert {k["kid"] for k in document["keys"]} == {old.key_id, new.key_id}
    for jwk in document["keys"]:
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
        assert "d" not in jwk
    ring = keyring_from_jwks(document)
    assert verify_attestation(old_token, ring, now=NOW) == _claims()
    assert verify_attestation(new_token, ring, now=NOW) == _claims()

    only_new = keyring_from_jwks({"keys": [k for k in document["keys"] if k["kid"] == new.key_id]})
    with pytest.raises(AttestationInvalid) as err:
        verify_attestation(old_token, only_new, now=NOW)
    assert err.value.reason == "attestation_unknown_key"


def test_a_jwk_whose_kid_names_another_key_is_refused(tmp_path: Path) -> None:
    a = Signer.load_or_create(tmp_path, "a")
    b = Signer.load_or_create(tmp_path, "b")
    document = jwks_of(KeyRing.from_pems([a.public_key_pem()]))
    document["keys"][0]["kid"] = b.key_id
    with pytest.raises(JwksInvalid) as err:
        keyring_from_jwks(document)
    assert err.value.reason == "jwks_kid_mismatch"


def test_a_jwk_carrying_a_private_key_is_refused(tmp_path: Path) -> None:
    from joserfc.jwk import OKPKey

    signer = Signer.load_active(tmp_path)
    leaked = OKPKey.import_key(signer.private_key, {"kid": signer.key_id}).as_dict(private=True)
    with pytest.raises(JwksInvalid):
        keyring_from_jwks({"keys": [dict(leaked)]})


def _claims() -> AttestationClaims:
    return attestation_claims(NOW)


def _header(token: str) -> str:
    return unb64url(token.split(".")[0]).decode()
