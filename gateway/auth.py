"""API keys: who is calling, and may they call this.

A key arrives as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. Keys are looked up
by constant-time comparison against every configured key, so response timing says nothing
about how much of a guessed key was right. A key is never logged, only its principal.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import Refusal
from gateway.state import gateway_of
from signgate.settings import ApiKey, Role, Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="signgate"'}


def find_key(settings: Settings, presented: str) -> ApiKey | None:
    found: ApiKey | None = None
    for candidate, api_key in settings.api_keys.items():
        # No early exit: every configured key is compared on every call.
        if hmac.compare_digest(candidate.encode(), presented.encode()):
            found = api_key
    return found


def require(*roles: Role) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that returns the caller's ApiKey if it holds one of `roles`."""
    allowed = frozenset(roles)

    async def authenticate(
        request: Request,
        header_key: Annotated[str | None, Depends(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        presented = header_key or (bearer.credentials if bearer else None)
        if not presented:
            raise Refusal(
                401, "api_key_missing", "send X-API-Key or Authorization: Bearer", _CHALLENGE
            )
        api_key = find_key(gateway_of(request).settings, presented)
        if api_key is None:
            raise Refusal(401, "api_key_invalid", "unknown API key", _CHALLENGE)
        structlog.contextvars.bind_contextvars(principal=api_key.principal, role=api_key.role)
        if api_key.role not in allowed:
            raise Refusal(
                403,
                "role_forbidden",
                f"role {api_key.role!r} may not do this (needs {' or '.join(sorted(allowed))})",
            )
        return api_key

    return authenticate
