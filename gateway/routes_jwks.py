"""`GET /.well-known/jwks.json`: every public signing key, for anyone who verifies.

No key needed: public keys are public, and a relying app must be able to check an
attestation without an account with us. The set is read from the key directory on each
request, so a rotation shows at once, and retired keys stay listed because what they
signed must keep verifying.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from gateway.state import Gateway, gateway_of
from signgate.jwks import jwks_of
from signgate.signer import KeyRing

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json")
async def jwks(
    gateway: Annotated[Gateway, Depends(gateway_of)], response: Response
) -> dict[str, list[dict[str, Any]]]:
    # Short cache: verifiers may fetch it per token; a new key appears within a minute.
    response.headers["Cache-Control"] = "public, max-age=60"
    return jwks_of(KeyRing.from_dir(gateway.settings.keys_dir))
