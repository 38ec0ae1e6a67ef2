"""Webhook signatures (HMAC-SHA256, one scheme: ours) and durable dedupe of webhook events.

Header: ``X-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
``HMAC-SHA256(secret, f"{t}.".encode() + body)`` in lowercase hex. A sender holding several
secrets during a rotation may send one ``v1`` per secret; a receiver accepts the delivery if
any ``v1`` matches any of its secrets. The timestamp is signed with the body, so a captured
delivery cannot be replayed outside the tolerance window, and inside it the event id dedupes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from signgate.errors import SigngateError

SIGNATURE_HEADER = "X-Signature"

_MAX_HEADER_CHARS = 4096  # room for a handful of rotated secrets; refuse anything bigger unread
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_V1 = re.compile(r"^[0-9a-f]{64}$")


class WebhookRejected(SigngateError):
    """A webhook whose signature does not prove it came from the vendor, now."""

    reason = "webhook_signature_invalid"
    http_status = 401


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Signature` header value for `body` sent at unix time `timestamp`."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def parse_signature(header: str) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures); unknown keys are ignored so a v2 can be added later."""
    if len(header) > _MAX_HEADER_CHARS:
        raise WebhookRejected("signature header too long", reason="webhook_signature_malformed")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookRejected(
                f"signature header part {part.strip()[:20]!r} is not key=value",
                reason="webhook_signature_malformed",
            )
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value.lower())
    if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]):
        raise WebhookRejected(
            "signature header needs exactly one t=<unix seconds>",
            reason="webhook_signature_malformed",
        )
    if not signatures or not all(_V1.match(s) for s in signatures):
        raise WebhookRejected(
            "signature header needs v1=<64 hex chars>", reason="webhook_signature_malformed"
        )
    return int(timestamps[0]), signatures


def verify_webhook(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    now: int,
    tolerance_s: int = 300,
) -> None:
    """Return if `header` signs exactly `body` with one of `secrets` within `tolerance_s` of `now`.

    The signature is checked before the clock, so `webhook_signature_stale` is only ever said
    of a delivery that really came from the vendor (a clock skew or a late replay to look at),
    never of a forgery.
    """
    if not secrets:
        raise ValueError("verify_webhook needs at least one secret")
    if not header or not header.strip():
        raise WebhookRejected("no X-Signature header", reason="webhook_signature_missing")
    timestamp, signatures = parse_signature(header)
    expected = [_digest(secret, timestamp, body).encode() for secret in secrets]
    # Compare every pair, constant time each, so timing says nothing about which one matched.
    matched = False
    for signature in signatures:
        for candidate in expected:
            matched |= hmac.compare_digest(signature.encode(), candidate)
    if not matched:
        raise WebhookRejected(
            "signature does not match the body with any current secret",
            reason="webhook_signature_invalid",
        )
    if abs(now - timestamp) > tolerance_s:
        raise WebhookRejected(
            f"signature timestamp is {now - timestamp}s from now (tolerance {tolerance_s}s)",
            reason="webhook_signature_stale",
        )


class WebhookEventLog:
    """Event ids already received, in SQLite, so a redelivered or replayed webhook is applied once.

    It also keeps, per vendor_ref, the vendor timestamp of the newest event applied, so an
    older event that arrives late (vendors retry out of order) changes nothing, even after
    a gateway restart.

    Each call opens its own connection: safe from any thread, and SQLite's file locking makes
    it safe across processes (WAL lets readers and the one writer proceed together).
    """

    _BUSY_TIMEOUT_S = 10.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS webhook_events ("
                " event_id TEXT PRIMARY KEY,"
                " received_at INTEGER NOT NULL,"
                " session_id TEXT NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS vendor_ref_newest ("
                " vendor_ref TEXT PRIMARY KEY,"
                " vendor_ts INTEGER NOT NULL,"
                " event_id TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=self._BUSY_TIMEOUT_S)) as db:
            with db:  # one transaction: commit on success, roll back on error
                yield db

    def seen(self, event_id: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM webhook_events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return row is not None

    def superseded(self, vendor_ref: str, vendor_ts: int) -> bool:
        """True if an event with a later vendor timestamp was already applied for vendor_ref."""
        with self._connect() as db:
            row = db.execute(
                "SELECT vendor_ts FROM vendor_ref_newest WHERE vendor_ref = ?", (vendor_ref,)
            ).fetchone()
        return row is not None and int(row[0]) > vendor_ts

    def record(
        self,
        event_id: str,
        session_id: str,
        vendor_ref: str | None = None,
        vendor_ts: int | None = None,
    ) -> bool:
        """Record the event (and, if newer, its vendor time for vendor_ref), in one transaction;
        True if the event id was new, False if it had been recorded before."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO webhook_events (event_id, received_at, session_id)"
                " VALUES (?, ?, ?)",
                (event_id, int(time.time()), session_id),
            )
            if vendor_ref is not None and vendor_ts is not None:
                db.execute(
                    "INSERT INTO vendor_ref_newest (vendor_ref, vendor_ts, event_id)"
                    " VALUES (?, ?, ?) ON CONFLICT(vendor_ref) DO UPDATE SET"
                    " vendor_ts = excluded.vendor_ts, event_id = excluded.event_id"
                    " WHERE excluded.vendor_ts > vendor_ref_newest.vendor_ts",
                    (vendor_ref, vendor_ts, event_id),
                )
            return cursor.rowcount == 1
