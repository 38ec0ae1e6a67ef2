"""The signing attestation: a compact JWS (EdDSA over Ed25519) a relying app can check offline.

Header `{"alg": "EdDSA", "kid": <signer key id>, "typ": "signgate-attestation+jws"}`;
payload = canonical JSON of `AttestationClaims`. The explicit `typ` keeps our attestation
from being accepted where some other JWS signed by the same key is expected, and vice versa.

joserfc (>= 1.x) registers "EdDSA" but, since RFC 9864 prefers the fully-specified
"Ed25519" name, warns on every use. We keep "EdDSA": it is the name the design names and
the one JOSE libraries in the wild verify today, and with the key pinned to Ed25519 by
our key ring it means exactly "Ed25519". A private registry allows that one algorithm
(no negotiation: "none", HMAC or RSA tokens are refused as malformed) and carries it
without the warning; `warnings.catch_warnings` would not be thread-safe here.

Issuing needs only `SigningKey.sign`: the JWS signing input is built here and signed by
the key itself, so a key that never leaves a KMS/HSM can issue attestations too.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm, JWSAlgModel
from joserfc.jwk import OKPKey
from pydantic import ValidationError

from signgate.canonical import canonical_json
from signgate.errors import BadInput
from signgate.models import AttestationClaims
from signgate.signer import KeyRing, SigningKey

ALG = "EdDSA"
TYP = "signgate-attestation+jws"


class AttestationInvalid(BadInput):
    """The token must not be honoured; `reason` says why (malformed, key, signature, time)."""

    reason = "attestation_invalid"
    http_status = 422


class _EdDSA(EdDSAAlgorithm):
    security_warning = None  # type: ignore[assignment]  # see module docstring


class _Registry(jws.JWSRegistry):
    algorithms: dict[str, JWSAlgModel] = {ALG: _EdDSA()}


_REGISTRY = _Registry(algorithms=[ALG])


def issue_attestation(signer: SigningKey, claims: AttestationClaims) -> str:
    """Compact JWS (RFC 7515 section 7.1) over the canonical claims, signed by `signer` and
    naming its key id."""
    header = {"alg": ALG, "kid": signer.key_id, "typ": TYP}
    signing_input = f"{_b64url(canonical_json(header))}.{_b64url(canonical_json(claims))}"
    return f"{signing_input}.{_b64url(signer.sign(signing_input.encode('ascii')))}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def verify_attestation(token: str, keyring: KeyRing, now: int | None = None) -> AttestationClaims:
    """The claims of a genuine, unexpired attestation, or `AttestationInvalid`.

    Order matters: nothing from the payload is believed before the signature checks out.
    Valid while `now < exp` (seconds since the epoch; the current time by default).
    """
    try:
        compact = jws.extract_compact(token.encode("ascii"), registry=_REGISTRY)
        header: dict[str, Any] = dict(compact.headers())
    except (JoseError, ValueError) as err:
        raise AttestationInvalid(
            f"not a compact JWS: {err}", reason="attestation_malformed"
        ) from err
    if header.get("alg") != ALG or header.get("typ") != TYP:
        raise AttestationInvalid(
            f"not a signgate attestation (alg={header.get('alg')!r}, typ={header.get('typ')!r})",
            reason="attestation_malformed",
        )
    kid = header.get("kid")
    public_key = keyring.get(kid) if isinstance(kid, str) else None
    if public_key is None:
        raise AttestationInvalid(f"unknown key id {kid!r}", reason="attestation_unknown_key")
    try:
        genuine = jws.validate_compact(compact, OKPKey.import_key(public_key), registry=_REGISTRY)
    except JoseError:
        genuine = False
    if not genuine:
        raise AttestationInvalid(
            "signature does not verify", reason="attestation_signature_invalid"
        )
    try:
        claims = AttestationClaims.model_validate(json.loads(compact.payload))
    except (ValueError, ValidationError) as err:
        raise AttestationInvalid(
            f"signed payload is not attestation claims: {err}", reason="attestation_malformed"
        ) from err
    current = int(time.time()) if now is None else now
    if current >= claims.exp:
        raise AttestationInvalid(
            f"attestation expired at {claims.exp} (now {current})", reason="attestation_expired"
        )
    return claims
