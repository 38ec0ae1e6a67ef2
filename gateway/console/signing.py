"""Short-lived HMAC tokens: the console's login cookie and its media URLs.

A token is `<base64url(canonical JSON claims)>.<base64url(HMAC-SHA256)>`; the claims carry
their own expiry (`exp`, unix seconds) and a `use` ("login" or "media"), so a media token
is never a login and neither outlives its minutes. Only the gateway that holds the secret
makes or reads them; nothing here is encrypted, so claims never hold a key or PII.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from signgate.errors import SigngateError


class TokenRefused(SigngateError):
    """Forged, tampered, expired or for another use: the caller gets a 403."""

    reason = "console_token_invalid"
    http_status = 403


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the console secret needs at least 16 bytes")
        self._secret = secret

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())

    def sign(self, use: str, ttl_s: int, claims: dict[str, Any], now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        payload = {**claims, "use": use, "exp": issued + ttl_s}
        body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, use: str, token: str, now: float | None = None) -> dict[str, Any]:
        """The claims if the token is ours, unchanged, for `use`, and not expired."""
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise TokenRefused("the link or login is not signed by this gateway")
        try:
            claims = json.loads(_unb64(body))
        except (binascii.Error, ValueError) as err:
            raise TokenRefused("the token is malformed") from err
        if not isinstance(claims, dict) or claims.get("use") != use:
            raise TokenRefused("the token is for something else")
        exp = claims.get("exp")
        if not isinstance(exp, int) or (time.time() if now is None else now) >= exp:
            raise TokenRefused("the link or login has expired", reason="console_token_expired")
        return claims
