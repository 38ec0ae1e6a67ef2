"""One interface for inbound webhook signatures, one implementation per vendor scheme.

Which scheme a vendor uses, and with which secrets, is a setting (`webhook_vendors`), so
adding a vendor is configuration plus, at most, one more small class here. Every verifier
checks the HMAC over the raw body before anything reads it, compares in constant time, and
accepts any of its secrets (during a rotation the vendor may sign with either).

- `signgate`: ours, `X-Signature: t=<unix>,v1=<hex>[,v1=...]` over ``f"{t}." + body``
  (see `signgate.webhooks`).
- `persona`: Persona-style, `Persona-Signature: t=<unix>,v1=<hex>`, the same HMAC over
  ``f"{t}." + body``; during a rotation several ``t=..,v1=..`` groups, space separated.
- `onfido`: Onfido-style, `X-SHA2-Signature: <hex>`, HMAC-SHA256 over the body alone. It
  signs no time, so `verify` returns None and the receiver judges freshness by the signed
  event time inside the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from signgate.settings import Settings, WebhookVendor
from signgate.webhooks import (
    SIGNATURE_HEADER,
    WebhookRejected,
    parse_signature,
    sign_webhook,
    verify_webhook,
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_HEADER_CHARS = 4096


class WebhookVerifier(Protocol):
    """Proves a delivery came from the vendor; says when it was signed, if the scheme does."""

    scheme: str
    header: str

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        """The headers the vendor would send (tests and the sandbox use it)."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: int) -> int | None:
        """Return the signed unix time (None if the scheme signs none), or raise
        `WebhookRejected` with `webhook_signature_{missing,malformed,invalid,stale}`."""
        ...


def _any_match(signatures: Sequence[str], expected: Sequence[str]) -> bool:
    matched = False
    for signature in signatures:
        for candidate in expected:
            matched |= hmac.compare_digest(signature.encode(), candidate.encode())
    return matched


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value or not value.strip():
        raise WebhookRejected(f"no {name} header", reason="webhook_signature_missing")
    if len(value) > _MAX_HEADER_CHARS:
        raise WebhookRejected("signature header too long", reason="webhook_signature_malformed")
    return value


def _check_fresh(timestamp: int, now: int, tolerance_s: int) -> None:
    if abs(now - timestamp) > tolerance_s:
        raise WebhookRejected(
            f"signature timestamp is {now - timestamp}s from now (tolerance {tolerance_s}s)",
            reason="webhook_signature_stale",
        )


class SigngateVerifier:
    """Our scheme; the same one our outbound events use."""

    scheme = "signgate"
    header = SIGNATURE_HEADER

    def __init__(self, secrets: Sequence[str], tolerance_s: int) -> None:
        if not secrets:
            raise ValueError("a verifier needs at least one secret")
        self.secrets = list(secrets)
        self.tolerance_s = tolerance_s

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        return {self.header: sign_webhook(self.secrets[0], body, timestamp)}

    def verify(self, headers: Mapping[str, str], body: bytes, now: int) -> int | None:
        value = headers.get(self.header)
        verify_webhook(value, body, self.secrets, now, self.tolerance_s)
        assert value is not None  # verify_webhook refuses a missing header
        return parse_signature(value)[0]


class PersonaVerifier:
    """Persona-style: ``t=<unix>,v1=<hex>`` groups, space separated during a rotation."""

    scheme = "persona"
    header = "Persona-Signature"

    def __init__(self, secrets: Sequence[str], tolerance_s: int) -> None:
        if not secrets:
            raise ValueError("a verifier needs at least one secret")
        self.secrets = list(secrets)
        self.tolerance_s = tolerance_s

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        digest = _hmac_hex(self.secrets[0], f"{timestamp}.".encode() + body)
        return {self.header: f"t={timestamp},v1={digest}"}

    def _groups(self, value: str) -> list[tuple[int, str]]:
        groups: list[tuple[int, str]] = []
        for group in value.split():
            fields = dict(part.partition("=")[::2] for part in group.split(","))
            t, v1 = fields.get("t", ""), fields.get("v1", "").lower()
            if not (t.isascii() and t.isdigit() and len(t) <= 12) or not _HEX64.match(v1):
                raise WebhookRejected(
                    "signature group needs t=<unix>,v1=<64 hex>",
                    reason="webhook_signature_malformed",
                )
            groups.append((int(t), v1))
        return groups

    def verify(self, headers: Mapping[str, str], body: bytes, now: int) -> int | None:
        groups = self._groups(_header(headers, self.header))
        for timestamp, signature in groups:
            expected = [_hmac_hex(s, f"{timestamp}.".encode() + body) for s in self.secrets]
            if _any_match([signature], expected):
                _check_fresh(timestamp, now, self.tolerance_s)
                return timestamp
        raise WebhookRejected(
            "signature does not match the body with any current secret",
            reason="webhook_signature_invalid",
        )


class OnfidoVerifier:
    """Onfido-style: a bare hex HMAC of the body; no signed time."""

    scheme = "onfido"
    header = "X-SHA2-Signature"

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a verifier needs at least one secret")
        self.secrets = list(secrets)

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        return {self.header: _hmac_hex(self.secrets[0], body)}

    def verify(self, headers: Mapping[str, str], body: bytes, now: int) -> int | None:
        signature = _header(headers, self.header).strip().lower()
        if not _HEX64.match(signature):
            raise WebhookRejected(
                "signature must be 64 hex chars", reason="webhook_signature_malformed"
            )
        if not _any_match([signature], [_hmac_hex(s, body) for s in self.secrets]):
            raise WebhookRejected(
                "signature does not match the body with any current secret",
                reason="webhook_signature_invalid",
            )
        return None


def verifier_for(vendor: WebhookVendor, settings: Settings) -> WebhookVerifier:
    secrets = vendor.secrets or settings.webhook_secrets
    tolerance_s = settings.webhook_tolerance_s
    if vendor.scheme == "persona":
        return PersonaVerifier(secrets, tolerance_s)
    if vendor.scheme == "onfido":
        return OnfidoVerifier(secrets)
    return SigngateVerifier(secrets, tolerance_s)


def check_event_fresh(event_time: int, now: int, max_age_s: int) -> None:
    """For a scheme that signs no time: judge the body's own (signed) event time."""
    _check_fresh(event_time, now, max_age_s)
