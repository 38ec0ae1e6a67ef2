"""API keys: who is calling, and may they call this.

A key arrives as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` and is looked up
by its SHA-256 in the key store (signgate/api_keys.py); the key itself is never stored or
logged, only the key id and principal it maps to. Every route names the roles it admits
with `require(*roles)`, and the role x endpoint matrix test holds the routes to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import Refusal
from gateway.state import gateway_of
from signgate.api_keys import Caller, KeyRevoked, KeyStore, key_store_path
from signgate.settings import Role, Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="signgate"'}
_MAX_KEY_CHARS = 256


def presented_key(request: Request) -> str | None:
    """The key a request carries, from either header (for middleware that runs before routes)."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def find_key(settings: Settings, presented: str) -> Caller | None:
    """The caller `presented` acts as, or None (unknown or revoked): for code outside a route."""
    try:
        return KeyStore(key_store_path(settings.var_dir)).authenticate(presented)
    except KeyRevoked:
        return None


async def authenticate(store: KeyStore, presented: str | None) -> Caller:
    """The caller, or 401 with why: no key, an unknown key, a revoked key."""
    if not presented:
        raise Refusal(401, "api_key_missing", "send X-API-Key or Authorization: Bearer", _CHALLENGE)
    if len(presented) > _MAX_KEY_CHARS:
        raise Refusal(401, "api_key_invalid", "unknown API key", _CHALLENGE)
    try:
        caller = await asyncio.to_thread(store.authenticate, presented)
    except KeyRevoked as revoked:
        structlog.contextvars.bind_contextvars(key_id=str(revoked))
        raise Refusal(401, "api_key_revoked", "this API key has been revoked", _CHALLENGE) from None
    if caller is None:
        raise Refusal(401, "api_key_invalid", "unknown API key", _CHALLENGE)
    return caller


def require(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency that returns the authenticated caller if it holds one of `roles`.

    The returned `Caller` is an `ApiKey` (role, principal, tenant_id) plus `key_id` and
    the full set of `roles`.
    """
    allowed = frozenset(roles)

    async def dependency(
        request: Request,
        header_key: Annotated[str | None, Depends(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        presented = header_key or (bearer.credentials if bearer else None)
        caller = await authenticate(gateway_of(request).keys, presented)
        structlog.contextvars.bind_contextvars(
            principal=caller.principal, role=caller.role, key_id=caller.key_id
        )
        if not caller.roles & allowed:
            raise Refusal(
                403,
                "role_forbidden",
                f"this key may not do this (needs {' or '.join(sorted(allowed))})",
            )
        return caller

    return dependency
