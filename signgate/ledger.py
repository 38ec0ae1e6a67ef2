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

Backends: this module holds the contract every backend shares (`Ledger`, entry bytes, the
append step under the head lock, the reads in `LedgerReader`, verification of a row stream)
and the SQLite backend; `signgate.ledger_postgres` is the PostgreSQL one. `open_ledger`
picks one from settings.
Every `checkpoint_every` entries, or on the first append once the latest checkpoint is
older than `checkpoint_interval_s` seconds, the appender also writes a signed tree head
over all entry hashes so far (`signgate.checkpoints`), so one entry can later be proven
to an outsider with a Merkle inclusion proof and a public key. The age is measured with
the same clock that stamps the entries (injectable, so tests need not sleep).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from signgate.canonical import canonical_json
from signgate.checkpoints import (
    CHECKPOINT_SESSION,
    CHECKPOINT_TYPE,
    checkpoint_problem,
    sign_tree_head,
)
from signgate.errors import BadInput, SigngateError
from signgate.hashing import sha256_hex
from signgate.models import Frozen, LedgerEntry, LedgerReceipt
from signgate.proofs import MerkleFrontier
from signgate.signer import KeyRing, Signer

if TYPE_CHECKING:
    from signgate.settings import Settings

GENESIS_PREV_HASH = "0" * 64
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def recomputed_entry_hash(entry: LedgerEntry) -> str:
    """What `entry.entry_hash` must be, from its own fields and its `prev_hash`: how a
    reader holding one entry (a proof, a bundle) checks it was not edited."""
    return chain_hash(
        entry.prev_hash,
        entry_bytes(
            entry.seq,
            entry.session_id,
            entry.entry_type,
            entry.idempotency_key,
            entry.created_at,
            entry.body,
        ),
    )


class Ledger(Protocol):
    """What every ledger backend offers; activities, CLI and gateway depend on this only."""

    def append(
        self, session_id: str, entry_type: str, idempotency_key: str, body: dict[str, Any]
    ) -> LedgerReceipt: ...

    def checkpoint(self) -> LedgerReceipt | None: ...

    def get(self, seq: int) -> LedgerEntry | None: ...

    def find_by_hash(self, entry_hash: str) -> LedgerEntry | None: ...

    def receipt_for(self, idempotency_key: str) -> LedgerReceipt | None: ...

    def head(self) -> LedgerReceipt | None: ...

    def entries(self, session_id: str | None = None) -> list[LedgerEntry]: ...

    def entry_hashes(self, tree_size: int) -> list[str]: ...

    def verify(self, keyring: KeyRing) -> LedgerVerifyReport: ...

    def close(self) -> None:
        """Give back the connections the ledger keeps open (its owner is shutting down);
        a later read or append opens what it needs again."""
        ...


def open_ledger(
    settings: Settings, signer: Signer | None, *, sqlite_path: Path | None = None
) -> Ledger:
    """The ledger the settings name (`SIGNGATE_LEDGER=sqlite|postgres`).

    `signer=None` opens it read/verify-only. `sqlite_path` overrides the SQLite file (the
    CLI's `--ledger`); it is ignored for PostgreSQL. psycopg is imported only when the
    PostgreSQL backend is chosen, so the embedded setup never loads it.
    """
    if settings.ledger == "postgres":
        from signgate.ledger_postgres import PostgresLedger

        return PostgresLedger(
            settings.postgres_dsn,
            settings.ledger_schema,
            signer,
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval_s=settings.checkpoint_interval_s,
        )
    return SqliteLedger(
        sqlite_path or settings.ledger_path,
        signer,
        checkpoint_every=settings.checkpoint_every,
        checkpoint_interval_s=settings.checkpoint_interval_s,
    )


def validate_append(
    session_id: str, entry_type: str, idempotency_key: str, body: Mapping[str, Any]
) -> str:
    """Refuse malformed input (BadInput) and return the canonical body text to store."""
    for name, value in (
        ("session_id", session_id),
        ("entry_type", entry_type),
        ("idempotency_key", idempotency_key),
    ):
        if not isinstance(value, str) or not value:
            raise BadInput(f"ledger {name} must be a non-empty string", reason="bad_input")
    if not isinstance(body, Mapping):
        raise BadInput("ledger body must be a JSON object", reason="bad_input")
    if session_id == CHECKPOINT_SESSION:
        raise BadInput("checkpoints are written by the ledger itself", reason="bad_input")
    return canonical_json(body).decode("utf-8")


def portable_sql(sql: str, table: str, placeholder: str) -> str:
    """`sql` written with `{t}` for the table and `?` for parameters, in a backend's spelling."""
    return sql.replace("{t}", table).replace("?", placeholder)


class HeadTx:
    """One write transaction that holds the backend's head lock, in portable SQL.

    Both sqlite3 and psycopg connections have `execute(sql, params)` returning a cursor;
    only the placeholder differs, so the append logic below is written once for both.
    """

    def __init__(self, conn: Any, table: str, placeholder: str) -> None:
        self._conn = conn
        self._table = table
        self._ph = placeholder

    def _sql(self, sql: str) -> str:
        return portable_sql(sql, self._table, self._ph)

    def by_key(self, idempotency_key: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(
            self._sql(
                "SELECT seq, session_id, entry_type, body, entry_hash, key_id"
                " FROM {t} WHERE idempotency_key = ?"
            ),
            (idempotency_key,),
        ).fetchone()
        return row

    def head(self) -> tuple[int, str, str] | None:
        row = self._conn.execute(
            self._sql("SELECT seq, entry_hash, entry_type FROM {t} ORDER BY seq DESC LIMIT 1")
        ).fetchone()
        return (int(row[0]), row[1], row[2]) if row is not None else None

    def last_checkpoint_seq(self) -> int:
        row = self._conn.execute(
            self._sql("SELECT max(seq) FROM {t} WHERE session_id = ? AND entry_type = ?"),
            (CHECKPOINT_SESSION, CHECKPOINT_TYPE),
        ).fetchone()
        return int(row[0]) if row[0] is not None else 0

    def last_checkpoint_time(self) -> str | None:
        """The signed timestamp of the latest checkpoint, else the first entry's time.

        With no checkpoint yet, the oldest uncovered entry is the first one, so its age
        is what the interval bounds. None on an empty ledger.
        """
        row = self._conn.execute(
            self._sql(
                "SELECT body FROM {t} WHERE session_id = ? AND entry_type = ?"
                " ORDER BY seq DESC LIMIT 1"
            ),
            (CHECKPOINT_SESSION, CHECKPOINT_TYPE),
        ).fetchone()
        if row is not None:
            return str(json.loads(row[0])["timestamp"])
        first = self._conn.execute(
            self._sql("SELECT created_at FROM {t} ORDER BY seq LIMIT 1")
        ).fetchone()
        return str(first[0]) if first is not None else None

    def entry_hashes(self, tree_size: int) -> list[str]:
        rows = self._conn.execute(
            self._sql("SELECT entry_hash FROM {t} WHERE seq BETWEEN 1 AND ? ORDER BY seq"),
            (tree_size,),
        ).fetchall()
        return [row[0] for row in rows]

    def insert(self, row: tuple[Any, ...]) -> None:
        marks = ", ".join("?" * len(row))
        self._conn.execute(self._sql(f"INSERT INTO {{t}} ({_COLUMNS}) VALUES ({marks})"), row)


def append_at_head(
    tx: HeadTx,
    signer: Signer,
    session_id: str,
    entry_type: str,
    idempotency_key: str,
    body_text: str,
    checkpoint_every: int = 0,
    checkpoint_interval_s: float = 0,
    clock: Clock = utc_now,
) -> LedgerReceipt:
    """Append one entry under the head lock (idempotent), then a checkpoint if one is due.

    Due means `checkpoint_every` entries since the last one, or the last one (or, before
    any, the first entry) older than `checkpoint_interval_s` by `clock`; 0 turns either off.

    The checkpoint is written in the same transaction, so a crash never leaves an entry
    whose due checkpoint is missing, and concurrent appenders never checkpoint twice.
    """
    existing = tx.by_key(idempotency_key)
    if existing is not None:
        seq, old_session, old_type, old_body, old_hash, old_key = existing
        if (old_session, old_type, old_body) != (session_id, entry_type, body_text):
            raise LedgerConflict(
                f"idempotency key {idempotency_key!r} already holds a different entry (seq {seq})"
            )
        return LedgerReceipt(seq=seq, entry_type=old_type, entry_hash=old_hash, key_id=old_key)
    receipt = _insert_at_head(tx, signer, session_id, entry_type, idempotency_key, body_text, clock)
    if (checkpoint_every > 0 and receipt.seq - tx.last_checkpoint_seq() >= checkpoint_every) or (
        checkpoint_interval_s > 0
        and _older_than(tx.last_checkpoint_time(), checkpoint_interval_s, clock)
    ):
        checkpoint_at_head(tx, signer, clock)
    return receipt


def _older_than(timestamp: str | None, seconds: float, clock: Clock) -> bool:
    if timestamp is None:
        return False
    return (clock() - datetime.fromisoformat(timestamp)).total_seconds() >= seconds


def checkpoint_at_head(tx: HeadTx, signer: Signer, clock: Clock = utc_now) -> LedgerReceipt | None:
    """Sign a tree head over every entry so far and append it; None on an empty ledger.

    A head that already is a checkpoint is returned as it is: nothing new to cover.
    """
    head = tx.head()
    if head is None:
        return None
    tree_size, head_hash, head_type = head
    if head_type == CHECKPOINT_TYPE:
        existing = tx.by_key(f"{CHECKPOINT_TYPE}:{tree_size - 1}")
        if existing is not None and existing[0] == tree_size:
            return LedgerReceipt(
                seq=tree_size, entry_type=CHECKPOINT_TYPE, entry_hash=head_hash, key_id=existing[5]
            )
    sth = sign_tree_head(signer, tx.entry_hashes(tree_size), _stamp(clock))
    body_text = canonical_json(sth).decode("utf-8")
    return _insert_at_head(
        tx,
        signer,
        CHECKPOINT_SESSION,
        CHECKPOINT_TYPE,
        f"{CHECKPOINT_TYPE}:{tree_size}",
        body_text,
        clock,
    )


def _stamp(clock: Clock) -> str:
    return clock().astimezone(UTC).isoformat(timespec="microseconds")


def _insert_at_head(
    tx: HeadTx,
    signer: Signer,
    session_id: str,
    entry_type: str,
    idempotency_key: str,
    body_text: str,
    clock: Clock = utc_now,
) -> LedgerReceipt:
    head = tx.head()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_PREV_HASH)
    created_at = _stamp(clock)
    # Hash the body exactly as it will be read back, so verify recomputes the same bytes.
    body = json.loads(body_text)
    digest = chain_hash(
        prev_hash, entry_bytes(seq, session_id, entry_type, idempotency_key, created_at, body)
    )
    signature_b64 = base64.b64encode(signer.sign(bytes.fromhex(digest))).decode("ascii")
    tx.insert(
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
        )
    )
    return LedgerReceipt(seq=seq, entry_type=entry_type, entry_hash=digest, key_id=signer.key_id)


class LedgerReader:
    """The read side every backend shares, in portable SQL (as `HeadTx` is for appends).

    A backend passes its table name and placeholder and supplies `_connect`: a context
    manager giving one connection (with `execute(sql, params)`) that is closed on exit.
    """

    def __init__(self, table: str, placeholder: str) -> None:
        self._table = table
        self._ph = placeholder

    def get(self, seq: int) -> LedgerEntry | None:
        return self._one(f"SELECT {_COLUMNS} FROM {{t}} WHERE seq = ?", (seq,))

    def find_by_hash(self, entry_hash: str) -> LedgerEntry | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM {{t}} WHERE entry_hash = ? ORDER BY seq LIMIT 1",
            (entry_hash,),
        )

    def receipt_for(self, idempotency_key: str) -> LedgerReceipt | None:
        entry = self._one(
            f"SELECT {_COLUMNS} FROM {{t}} WHERE idempotency_key = ?", (idempotency_key,)
        )
        return receipt_of(entry) if entry else None

    def head(self) -> LedgerReceipt | None:
        entry = self._one(f"SELECT {_COLUMNS} FROM {{t}} ORDER BY seq DESC LIMIT 1", ())
        return receipt_of(entry) if entry else None

    def entries(self, session_id: str | None = None) -> list[LedgerEntry]:
        """All entries in chain order, or one session's (checkpoints: `CHECKPOINT_SESSION`)."""
        with self._connect() as conn:
            if session_id is None:
                rows = conn.execute(self._sql(f"SELECT {_COLUMNS} FROM {{t}} ORDER BY seq"))
            else:
                rows = conn.execute(
                    self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE session_id = ? ORDER BY seq"),
                    (session_id,),
                )
            return [row_entry(row) for row in rows.fetchall()]

    def entry_hashes(self, tree_size: int) -> list[str]:
        """Hashes of entries 1..tree_size in order: the leaves of a checkpoint's tree."""
        with self._connect() as conn:
            return HeadTx(conn, self._table, self._ph).entry_hashes(tree_size)

    def _connect(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return portable_sql(sql, self._table, self._ph)

    def _one(self, sql: str, params: tuple[Any, ...]) -> LedgerEntry | None:
        with self._connect() as conn:
            row = conn.execute(self._sql(sql), params).fetchone()
        return row_entry(row) if row is not None else None


class LedgerWriter(LedgerReader):
    """The write side every backend shares: validate, then append or checkpoint at the head.

    A backend supplies `_head_tx`: a context manager that holds its one writer lock (SQLite's
    BEGIN IMMEDIATE, PostgreSQL's advisory lock) and commits on exit.
    `checkpoint_every=0` and `checkpoint_interval_s=0` (the constructor defaults) write
    checkpoints only when asked; `clock` stamps entries and checkpoints (tests inject one).
    """

    def __init__(
        self,
        table: str,
        placeholder: str,
        signer: Signer | None,
        checkpoint_every: int,
        checkpoint_interval_s: float,
        clock: Clock,
    ) -> None:
        super().__init__(table, placeholder)
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock

    def append(
        self, session_id: str, entry_type: str, idempotency_key: str, body: dict[str, Any]
    ) -> LedgerReceipt:
        """Append one signed entry, or return the receipt of the entry this key already made.

        Idempotent so activity retries never duplicate: the same key with the same session,
        type and canonical body returns the existing receipt; with anything different it
        raises `LedgerConflict`.
        """
        signer = self._writer()
        body_text = validate_append(session_id, entry_type, idempotency_key, body)
        with self._head_tx() as tx:
            return append_at_head(
                tx,
                signer,
                session_id,
                entry_type,
                idempotency_key,
                body_text,
                self._checkpoint_every,
                self._checkpoint_interval_s,
                self._clock,
            )

    def checkpoint(self) -> LedgerReceipt | None:
        """Force a signed checkpoint over every entry so far (`signgate audit checkpoint`)."""
        signer = self._writer()
        with self._head_tx() as tx:
            return checkpoint_at_head(tx, signer, self._clock)

    def _writer(self) -> Signer:
        if self._signer is None:
            raise LedgerReadOnly("this ledger was opened without a signer")
        return self._signer

    def _head_tx(self) -> AbstractContextManager[HeadTx]:
        raise NotImplementedError


def _file_identity(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


class SqliteLedger(LedgerWriter):
    """Append-only audit ledger in one SQLite file; `signer=None` opens it read/verify-only.

    A read-only ledger never creates the file or the schema, so pointing a verifier at a
    wrong path reports `ledger_missing` instead of verifying a fresh empty ledger.
    """

    def __init__(
        self,
        path: Path,
        signer: Signer | None,
        *,
        checkpoint_every: int = 0,
        checkpoint_interval_s: float = 0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            "ledger_entries", "?", signer, checkpoint_every, checkpoint_interval_s, clock
        )
        self._path = path
        self._local = threading.local()
        if signer is not None:
            self._create_schema()

    @property
    def path(self) -> Path:
        return self._path

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _head_tx(self) -> Iterator[HeadTx]:
        """BEGIN IMMEDIATE takes SQLite's one write lock before the head is read."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield HeadTx(conn, "ledger_entries", "?")
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    # ------------------------------------------------------------------ verifying

    def verify(self, keyring: KeyRing) -> LedgerVerifyReport:
        """Recompute every hash, link and signature from the stored columns, in seq order.

        Stops at the first entry that does not hold and names it. Seqs must run 1..n with
        no gap; a row outside that range (seq < 1) is reported after the chain itself.
        Checkpoint entries must also carry a valid signed tree head over the entries
        before them. Removing entries from the tail is not detectable from the chain alone:
        compare `head()` with an independently kept receipt (or checkpoint) for that.
        """
        try:
            with self._connect() as conn:
                conn.execute("BEGIN")  # one read snapshot for both queries, even with writers
                try:
                    rows = conn.execute(
                        f"SELECT {_COLUMNS} FROM ledger_entries WHERE seq >= 1 ORDER BY seq"
                    )
                    report = verify_rows(rows, keyring)
                    if not report.ok:
                        return report
                    stray = conn.execute(
                        "SELECT min(seq) FROM ledger_entries WHERE seq < 1"
                    ).fetchone()
                    if stray[0] is not None:
                        return _bad(report.entries_checked, stray[0], "seq_out_of_range")
                    return report
                finally:
                    conn.execute("ROLLBACK")
        except LedgerMissing as err:
            return LedgerVerifyReport(ok=False, entries_checked=0, reason=err.reason)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the file, kept open between calls (opening one costs
        more than a durable append itself). Reopened when the path no longer names the
        file it was opened on, so a moved or deleted ledger is never written to unseen."""
        if self._signer is None and not self._path.exists():
            raise LedgerMissing(f"no ledger at {self._path}")
        kept: tuple[sqlite3.Connection, tuple[int, int]] | None = getattr(self._local, "conn", None)
        if kept is not None and kept[1] != _file_identity(self._path):
            kept[0].close()
            kept = None
        if kept is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE matters).
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            if self._signer is None and not _has_ledger_table(conn):
                conn.close()  # a file a writer never got to set up (it died first)
                raise LedgerMissing(f"no ledger table in {self._path}")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
            kept = (conn, _file_identity(self._path))
            self._local.conn = kept
        yield kept[0]

    def close(self) -> None:
        """Close this thread's kept connection (others close with their threads)."""
        kept = getattr(self._local, "conn", None)
        if kept is not None:
            kept[0].close()
            self._local.conn = None

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


def _has_ledger_table(conn: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'"
    return conn.execute(query).fetchone() is not None


def row_entry(row: tuple[Any, ...]) -> LedgerEntry:
    """A stored row (columns in `_COLUMNS` order) as a `LedgerEntry`."""
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


def receipt_of(entry: LedgerEntry) -> LedgerReceipt:
    return LedgerReceipt(
        seq=entry.seq, entry_type=entry.entry_type, entry_hash=entry.entry_hash, key_id=entry.key_id
    )


def _bad(checked: int, seq: int, reason: str) -> LedgerVerifyReport:
    return LedgerVerifyReport(ok=False, entries_checked=checked, first_bad_seq=seq, reason=reason)


def verify_rows(rows: Iterable[tuple[Any, ...]], keyring: KeyRing) -> LedgerVerifyReport:
    """Check a stream of stored rows (seq >= 1, in seq order) as one chain from genesis.

    Every backend feeds its rows here, so SQLite and PostgreSQL verify by the same code.
    Checkpoints are re-derived as the chain goes: the Merkle root of the entry hashes
    before each one is kept incrementally, so this stays one pass.
    """
    checked = 0
    prev_hash = GENESIS_PREV_HASH
    frontier = MerkleFrontier()
    for row in rows:
        expected_seq = checked + 1
        if row[0] != expected_seq:
            return _bad(checked, expected_seq, "seq_gap")
        problem = _check_entry(row, prev_hash, keyring)
        if problem is None and row[1] == CHECKPOINT_SESSION and row[2] == CHECKPOINT_TYPE:
            problem = checkpoint_problem(json.loads(row[5]), checked, frontier.root_hex(), keyring)
        if problem is not None:
            return _bad(checked, expected_seq, problem)
        prev_hash = row[7]
        frontier.append(row[7])
        checked += 1
    return LedgerVerifyReport(ok=True, entries_checked=checked)


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
