"""Our public keys as a JWK Set (RFC 7517), and back.

The gateway publishes every signing key it has ever used at `/.well-known/jwks.json`, so a
relying app verifies an attestation with nothing but that document. Each key is an OKP
key on Ed25519 (RFC 8037) with `kid` = our key id, `use` = "sig" and `alg` = "EdDSA".

Reading a JWKS recomputes every key id from the key itself and refuses a `kid` that does
not match: whoever serves the document cannot make one key answer for another's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from signgate.attestation import ALG
from signgate.errors import BadInput
from signgate.signer import KeyRing, key_id_for


class JwksInvalid(BadInput):
    reason = "jwks_invalid"


def jwks_of(keyring: KeyRing) -> dict[str, list[dict[str, Any]]]:
    """The JWK Set of every public key in `keyring`, ordered by key id."""
    keys: list[dict[str, Any]] = []
    for kid in keyring.key_ids:
        public_key = keyring.get(kid)
        assert public_key is not None
        jwk = OKPKey.import_key(public_key, {"kid": kid, "use": "sig", "alg": ALG})
        keys.append(dict(jwk.as_dict(private=False)))
    return {"keys": keys}


def keyring_from_jwks(document: Mapping[str, Any]) -> KeyRing:
    """A verifier's key ring from a JWK Set; only Ed25519 keys, each `kid` checked."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JwksInvalid("a JWK Set needs a 'keys' list")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or entry.get("kty") != "OKP"
            or entry.get("crv") != "Ed25519"
        ):
            continue  # other key types may share the set; they never verify our tokens
        if "d" in entry:
            raise JwksInvalid("a published JWK must not hold a private key")
        try:
            public_key = OKPKey.import_key(entry).public_key
        except (JoseError, ValueError) as err:
            raise JwksInvalid(f"not an Ed25519 JWK: {err}") from err
        if not isinstance(public_key, Ed25519PublicKey):
            raise JwksInvalid("not an Ed25519 JWK")
        kid = key_id_for(public_key)
        if entry.get("kid") != kid:
            raise JwksInvalid(
                f"JWK kid {entry.get('kid')!r} does not name its key ({kid})",
                reason="jwks_kid_mismatch",
            )
        keys[kid] = public_key
    return KeyRing(keys)
