"""The audit ledger: append-only, hash-chained, every entry signed (SQLite, embedded default).

Each entry's hash covers its own columns and the previous entry's hash, and the signer
signs that hash, so changing any byte of any stored entry, removing one, or reordering
them is found by `verify`, which names the first bad `seq`. SQLite triggers refuse UPDATE
and DELETE (and any insert that is not at the head) so honest code cannot rewrite history
by mistake; the chain and the signatures are what catch a dishonest writer.

Entry hash (the contract an outside verifier re-implements):

    entry_bytes = canonical_json({"seq", "session_id", "entry_type", "idempotency_key",
                                  "created_at", "body"})
    entry_hash  = sha256(bytes.fromhex(prev_hash) + entry_bytes)   # genesis prev = "0"*64
    signature   = Ed25519(bytes.fromhex(entry_hash)), stored base64

Concurrency: every call opens its own connection and closes it before returning, so one
`SqliteLedger` is safe to share between threads (asyncio.to_thread activities) and any
number of processes may open the same file. Appends run inside `BEGIN IMMEDIATE`, which
takes SQLite's single write lock before reading the head, so the chain stays linear across
threads and processes; WAL lets readers run meanwhile, `synchronous=FULL` makes a receipt
durable before it is returned, and waits for the lock give up after 10 s.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signgate.canonical import canonical_json
from signgate.errors import BadInput, SigngateError
from signgate.hashing import sha256_hex
from signgate.models import Frozen, LedgerEntry, LedgerReceipt
from signgate.signer import KeyRing, Signer

GENESIS_PREV_HASH = "0" * 64
BUSY_TIMEOUT_MS = 10_000

_COLUMNS = (
    "seq, session_id, entry_type, idempotency_key, created_at, body,"
    " prev_hash, entry_hash, key_id, signature_b64"
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        seq INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        entry_type TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        entry_hash TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature_b64 TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_entries_session ON ledger_entries (session_id, seq)",
    "CREATE INDEX IF NOT EXISTS ledger_entries_hash ON ledger_entries (entry_hash)",
    """CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update
        BEFORE UPDATE ON ledger_entries
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete
        BEFORE DELETE ON ledger_entries
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END""",
    # INSERT OR REPLACE deletes the old row without firing delete triggers (unless
    # recursive_triggers is on), so inserts are allowed only at the head of the chain.
    """CREATE TRIGGER IF NOT EXISTS ledger_entries_insert_at_head
        BEFORE INSERT ON ledger_entries
        WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM ledger_entries)
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END""",
)


class LedgerError(SigngateError):
    reason = "ledger_error"
    http_status = 500


class LedgerConflict(LedgerError, BadInput):
    """The idempotency key was already used for a different entry: a retry cannot fix it."""

    reason = "ledger_idempotency_conflict"
    http_status = 409


class LedgerMissing(LedgerError):
    """A read-only ledger was opened on a path where no ledger has been written yet."""

    reason = "ledger_missing"
    http_status = 404


class LedgerReadOnly(LedgerError):
    """`append` on a ledger opened without a signer (a verifier's or reader's ledger)."""

    reason = "ledger_read_only"


class LedgerVerifyReport(Frozen):
    """Outcome of `SqliteLedger.verify`: `first_bad_seq` is where the chain stops holding."""

    ok: bool
    entries_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def entry_bytes(
    seq: int,
    session_id: str,
    entry_type: str,
    idempotency_key: str,
    created_at: str,
    body: Mapping[str, Any],
) -> bytes:
    """The canonical bytes an entry hash covers (everything but the chain and signature)."""
    return canonical_json(
        {
            "seq": seq,
            "session_id": session_id,
            "entry_type": entry_type,
            "idempotency_key": idempotency_key,
            "created_at": created_at,
            "body": body,
        }
    )


def chain_hash(prev_hash: str, entry: bytes) -> str:
    """sha256(prev_hash bytes || entry bytes), hex: links an entry to all before it."""
    return sha256_hex(bytes.fromhex(prev_hash) + entry)


class SqliteLedger:
    """Append-only audit ledger in one SQLite file; `signer=None` opens it read/verify-only.

    A read-only ledger never creates the file or the schema, so pointing a verifier at a
    wrong path reports `ledger_missing` instead of verifying a fresh empty ledger.
    """

    def __init__(self, path: Path, signer: Signer | None) -> None:
        self._path = path
        self._signer = signer
        if signer is not None:
            self._create_schema()

    @property
    def path(self) -> Path:
        return self._path

    # ------------------------------------------------------------------ writing

    def append(
        self, session_id: str, entry_type: str, idempotency_key: str, body: dict[str, Any]
    ) -> LedgerReceipt:
        """Append one signed entry, or return the receipt of the entry this key already made.

        Idempotent so activity retries never duplicate: the same key with the same session,
        type and canonical body returns the existing receipt; with anything different it
        raises `LedgerConflict`.
        """
        signer = self._signer
        if signer is None:
            raise LedgerReadOnly("this ledger was opened without a signer")
        for name, value in (
            ("session_id", session_id),
            ("entry_type", entry_type),
            ("idempotency_key", idempotency_key),
        ):
            if not isinstance(value, str) or not value:
                raise BadInput(f"ledger {name} must be a non-empty string", reason="bad_input")
        if not isinstance(body, Mapping):
            raise BadInput("ledger body must be a JSON object", reason="bad_input")
        body_text = canonical_json(body).decode("utf-8")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                receipt = self._append_at_head(
                    conn, signer, session_id, entry_type, idempotency_key, body_text
                )
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        return receipt

    def _append_at_head(
        self,
        conn: sqlite3.Connection,
        signer: Signer,
        session_id: str,
        entry_type: str,
        idempotency_key: str,
        body_text: str,
    ) -> LedgerReceipt:
        existing = conn.execute(
            "SELECT seq, session_id, entry_type, body, entry_hash, key_id"
            " FROM ledger_entries WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        if existing is not None:
            seq, old_session, old_type, old_body, old_hash, old_key = existing
            if (old_session, old_type, old_body) != (session_id, entry_type, body_text):
                raise LedgerConflict(
                    f"idempotency key {idempotency_key!r} already holds a different entry"
                    f" (seq {seq})"
                )
            return LedgerReceipt(seq=seq, entry_type=old_type, entry_hash=old_hash, key_id=old_key)

        head = conn.execute(
            "SELECT seq, entry_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_PREV_HASH)
        created_at = datetime.now(UTC).isoformat(timespec="microseconds")
        # Hash the body exactly as it will be read back, so verify recomputes the same bytes.
        body = json.loads(body_text)
        digest = chain_hash(
            prev_hash,
            entry_bytes(seq, session_id, entry_type, idempotency_key, created_at, body),
        )
        signature_b64 = base64.b64encode(signer.sign(bytes.fromhex(digest))).decode("ascii")
        conn.execute(
            f"INSERT INTO ledger_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                session_id,
                entry_type,
                idempotency_key,
                created_at,
                body_text,
                prev_hash,
                digest,
                signer.key_id,
                signature_b64,
            ),
        )
        return LedgerReceipt(
            seq=seq, entry_type=entry_type, entry_hash=digest, key_id=signer.key_id
        )

    # ------------------------------------------------------------------ reading

    def get(self, seq: int) -> LedgerEntry | None:
        return self._one(f"SELECT {_COLUMNS} FROM ledger_entries WHERE seq = ?", (seq,))

    def find_by_hash(self, entry_hash: str) -> LedgerEntry | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE entry_hash = ? ORDER BY seq LIMIT 1",
            (entry_hash,),
        )

    def receipt_for(self, idempotency_key: str) -> LedgerReceipt | None:
        entry = self._one(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE idempotency_key = ?",
            (idempotency_key,),
        )
        return _receipt(entry) if entry else None

    def head(self) -> LedgerReceipt | None:
        entry = self._one(f"SELECT {_COLUMNS} FROM ledger_entries ORDER BY seq DESC LIMIT 1", ())
        return _receipt(entry) if entry else None

    def entries(self, session_id: str | None = None) -> list[LedgerEntry]:
        """All entries in chain order, or one session's."""
        with self._connect() as conn:
            if session_id is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM ledger_entries ORDER BY seq")
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM ledger_entries WHERE session_id = ? ORDER BY seq",
                    (session_id,),
                )
            return [_entry(row) for row in rows]

    # ------------------------------------------------------------------ verifying

    def verify(self, keyring: KeyRing) -> LedgerVerifyReport:
        """Recompute every hash, link and signature from the stored columns, in seq order.

        Stops at the first entry that does not hold and names it. Seqs must run 1..n with
        no gap; a row outside that range (seq < 1) is reported after the chain itself.
        Removing entries from the tail is not detectable from the chain alone: compare
        `head()` with an independently kept receipt for that.
        """
        try:
            with self._connect() as conn:
                return _verify_chain(conn, keyring)
        except LedgerMissing as err:
            return LedgerVerifyReport(ok=False, entries_checked=0, reason=err.reason)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._signer is None and not self._path.exists():
            raise LedgerMissing(f"no ledger at {self._path}")
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE matters).
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        with closing(conn):
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn

    def _create_schema(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _one(self, sql: str, params: tuple[Any, ...]) -> LedgerEntry | None:
        with self._connect() as conn:
            row = conn.execute(sql, params).fetchone()
        return _entry(row) if row is not None else None


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    seq, session_id, entry_type, key, created_at, body, prev, digest, key_id, sig = row
    return LedgerEntry(
        seq=seq,
        session_id=session_id,
        entry_type=entry_type,
        idempotency_key=key,
        created_at=created_at,
        body=json.loads(body),
        prev_hash=prev,
        entry_hash=digest,
        key_id=key_id,
        signature_b64=sig,
    )


def _receipt(entry: LedgerEntry) -> LedgerReceipt:
    return LedgerReceipt(
        seq=entry.seq, entry_type=entry.entry_type, entry_hash=entry.entry_hash, key_id=entry.key_id
    )


def _bad(checked: int, seq: int, reason: str) -> LedgerVerifyReport:
    return LedgerVerifyReport(ok=False, entries_checked=checked, first_bad_seq=seq, reason=reason)


def _verify_chain(conn: sqlite3.Connection, keyring: KeyRing) -> LedgerVerifyReport:
    conn.execute("BEGIN")  # one read snapshot for both queries, even with writers running
    try:
        checked = 0
        prev_hash = GENESIS_PREV_HASH
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE seq >= 1 ORDER BY seq"
        ):
            expected_seq = checked + 1
            if row[0] != expected_seq:
                return _bad(checked, expected_seq, "seq_gap")
            problem = _check_entry(row, prev_hash, keyring)
            if problem is not None:
                return _bad(checked, expected_seq, problem)
            prev_hash = row[7]
            checked += 1
        stray = conn.execute("SELECT min(seq) FROM ledger_entries WHERE seq < 1").fetchone()
        if stray[0] is not None:
            return _bad(checked, stray[0], "seq_out_of_range")
        return LedgerVerifyReport(ok=True, entries_checked=checked)
    finally:
        conn.execute("ROLLBACK")


def _check_entry(row: tuple[Any, ...], expected_prev: str, keyring: KeyRing) -> str | None:
    """The reason code for the first thing wrong with one stored row, or None if it holds."""
    seq, session_id, entry_type, key, created_at, body_text, prev, digest, key_id, sig = row
    if not all(isinstance(value, str) for value in row[1:]):
        return "entry_malformed"  # a column rewritten with a non-text value
    if prev != expected_prev:
        return "chain_broken"
    try:
        body = json.loads(body_text)
        # Byte-exact: whitespace or key order added to the stored text must not slip past.
        if not isinstance(body, dict) or canonical_json(body).decode("utf-8") != body_text:
            return "body_not_canonical"
        recomputed = chain_hash(
            prev, entry_bytes(seq, session_id, entry_type, key, created_at, body)
        )
    except (ValueError, SigngateError):
        return "body_not_canonical"
    if recomputed != digest:
        return "entry_hash_mismatch"
    if key_id not in keyring:
        return "unknown_key"
    signature = _strict_b64decode(sig)
    if signature is None or not keyring.verify(key_id, signature, bytes.fromhex(digest)):
        return "signature_invalid"
    return None


def _strict_b64decode(text: str) -> bytes | None:
    """Decode only the one canonical base64 spelling of some bytes.

    Plain b64decode ignores the unused low bits of the last character, so a changed byte
    there would decode to the same signature and go unnoticed; re-encoding closes that.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None
