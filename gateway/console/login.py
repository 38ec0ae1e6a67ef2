"""Who is at the console: a reviewer's API key, traded once for a signed login cookie.

The key is checked with the gateway's own lookup (`gateway.auth.find_key`) and never
stored: the cookie holds the principal and role, signed and expiring. On every request
the principal must still be a reviewer in the settings' roster, so removing a key's
reviewer ends its console logins without waiting for the cookie to expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from gateway.auth import find_key
from gateway.console.frames import FrameCache
from gateway.console.signing import TokenRefused, TokenSigner
from gateway.errors import Refusal
from gateway.state import gateway_of
from signgate.models import ReviewerRole
from signgate.settings import Settings

COOKIE = "signgate_console"
LOGIN_TTL_S = 8 * 3600
MEDIA_TTL_S = 120
REVIEWER_ROLES = ("reviewer", "senior_reviewer")


@dataclass(frozen=True)
class Reviewer:
    principal: str
    role: ReviewerRole
    token: str  # the login cookie, from which the form's CSRF token is derived

    @property
    def csrf(self) -> str:
        return hashlib.sha256(b"csrf:" + self.token.encode()).hexdigest()[:32]

    def csrf_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.csrf.encode())


class Console:
    """The console's state on `app.state.console`: its token signer and frame cache."""

    def __init__(self, settings: Settings) -> None:
        # Unset: a fresh secret per process (logins and links end with a restart). Set it
        # when several gateway processes serve one console.
        secret = settings.console_secret or secrets.token_urlsafe(32)
        self.signer = TokenSigner(secret.encode())
        self.frames = FrameCache()


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def log_in(request: Request, response: Response, api_key: str) -> None:
    """Set the login cookie for a reviewer's key; refuse any other key."""
    key = find_key(gateway_of(request).settings, api_key)
    if key is None:
        raise Refusal(401, "api_key_invalid", "unknown API key")
    if key.role not in REVIEWER_ROLES:
        raise Refusal(403, "role_forbidden", f"role {key.role!r} may not use the console")
    token = console_of(request).signer.sign(
        "login", LOGIN_TTL_S, {"sub": key.principal, "role": key.role, "kid": key.key_id}
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=LOGIN_TTL_S,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def log_out(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


def current_reviewer(request: Request) -> Reviewer | None:
    """The logged-in reviewer, or None (no cookie, bad or expired cookie, role removed)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        claims = console_of(request).signer.verify("login", token)
    except TokenRefused:
        return None
    # The login lives only as long as the key it was made with: revoked -> logged out.
    stored = gateway_of(request).keys.find(str(claims.get("kid")))
    if stored is None or stored.revoked_at is not None:
        return None
    role = stored.caller().reviewer_role
    if role is None or role.value != claims.get("role") or stored.principal != claims.get("sub"):
        return None
    return Reviewer(principal=stored.principal, role=role, token=token)
