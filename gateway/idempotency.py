"""`Idempotency-Key` on every POST: a retried call gets the saved response, never a second effect.

Keys are scoped to the caller (tenant and principal), so two apps cannot collide or read
each other's responses. The request is fingerprinted (method, path, query, body): the
same key with the same request replays the saved status and body (marked
`Idempotent-Replayed: true`); the same key with a different request is a 409
`idempotency_conflict`; a key whose first request is still running is a 409
`idempotency_in_progress`. Responses are saved in SQLite next to the webhook event log,
so a replay survives a gateway restart. A 5xx or 429 is not saved (the call may be
retried to a different outcome), and neither is a refusal to authenticate (a request that
never reached a route has nothing to replay). Saved responses are kept for a day.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import presented_key
from gateway.body_limit import replay
from gateway.errors import error_body
from signgate.api_keys import Caller, KeyRevoked, KeyStore

log = structlog.get_logger("signgate.gateway")

HEADER = "idempotency-key"
RETENTION_S = 24 * 3600
# A first request that has been running this long died with its process; a retry may
# take its key over instead of hearing "in progress" forever.
STALE_IN_PROGRESS_S = 120
_MAX_KEY_CHARS = 255

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    started_at   REAL NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BLOB,
    PRIMARY KEY (scope, key)
)
"""


@dataclass(frozen=True)
class Saved:
    status: int
    content_type: str
    body: bytes


class Conflict(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IdempotencyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def begin(self, scope: str, key: str, fingerprint: str) -> Saved | None:
        """Claim `key` for this request (None), or return its saved response, or Conflict."""
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM idempotency WHERE started_at < ?", (now - RETENTION_S,))
                row = db.execute(
                    "SELECT fingerprint, started_at, status, content_type, body FROM idempotency"
                    " WHERE scope = ? AND key = ?",
                    (scope, key),
                ).fetchone()
                if row is None or (row[2] is None and row[1] < now - STALE_IN_PROGRESS_S):
                    db.execute(
                        "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, NULL, NULL, NULL)",
                        (scope, key, fingerprint, now),
                    )
                    db.execute("COMMIT")
                    return None
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        saved_fingerprint, _, status, content_type, body = row
        if saved_fingerprint != fingerprint:
            raise Conflict(
                "idempotency_conflict", "this Idempotency-Key was used for a different request"
            )
        if status is None:
            raise Conflict(
                "idempotency_in_progress", "the first request with this key is still running"
            )
        return Saved(status=status, content_type=content_type, body=body)

    def finish(self, scope: str, key: str, saved: Saved) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE idempotency SET status = ?, content_type = ?, body = ?"
                " WHERE scope = ? AND key = ?",
                (saved.status, saved.content_type, saved.body, scope, key),
            )

    def abandon(self, scope: str, key: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM idempotency WHERE scope = ? AND key = ? AND status IS NULL",
                (scope, key),
            )


def fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _caller(keys: KeyStore, presented: str | None) -> Caller | None:
    if not presented:
        return None
    try:
        return keys.authenticate(presented)
    except KeyRevoked:
        return None


class Idempotency:
    def __init__(self, app: ASGIApp, store: IdempotencyStore, keys: KeyStore) -> None:
        self.app = app
        self.store = store
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        key = request.headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > _MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
            why = f"Idempotency-Key must be 1-{_MAX_KEY_CHARS} printable ASCII characters"
            await _refuse(scope, receive, send, 400, "idempotency_key_invalid", why)
            return
        caller = await asyncio.to_thread(_caller, self.keys, presented_key(request))
        if caller is None:
            await self.app(scope, receive, send)  # the route answers 401
            return
        body = await request.body()
        owner = f"{caller.tenant_id}/{caller.principal}"
        try:
            saved = await asyncio.to_thread(self.store.begin, owner, key, fingerprint(scope, body))
        except Conflict as conflict:
            await _refuse(scope, receive, send, 409, conflict.reason, str(conflict))
            return
        if saved is not None:
            log.info("idempotent_replay", status=saved.status)
            response = Response(
                saved.body,
                status_code=saved.status,
                media_type=saved.content_type,
                headers={"Idempotent-Replayed": "true"},
            )
            await response(scope, receive, send)
            return
        await self._first_time(scope, replay(body, receive), send, owner, key)

    async def _first_time(
        self, scope: Scope, receive: Receive, send: Send, owner: str, key: str
    ) -> None:
        status = 500
        content_type = "application/json"
        chunks: list[bytes] = []
        saved = False

        async def capture(message: Message) -> None:
            nonlocal status, content_type, saved
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                last = not message.get("more_body", False)
                if last and status < 500 and status not in (401, 429):
                    # Saved before the client sees the end of the answer: a retry sent the
                    # moment it arrives finds the response, not `idempotency_in_progress`.
                    answer = Saved(status=status, content_type=content_type, body=b"".join(chunks))
                    await asyncio.to_thread(self.store.finish, owner, key, answer)
                    saved = True
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not saved:
                await asyncio.to_thread(self.store.abandon, owner, key)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, reason: str, message: str
) -> None:
    log.info("request_refused", reason=reason, status=status)
    await JSONResponse(error_body(reason, message), status_code=status)(scope, receive, send)
