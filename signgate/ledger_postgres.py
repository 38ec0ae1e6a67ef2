"""The audit ledger in PostgreSQL (psycopg 3): same entries, chain and checks as SQLite.

Rows, entry bytes, hashes and signatures are exactly those of `signgate.ledger` (the body
is stored as its canonical JSON text, not jsonb, which would respell it), and appends and
verification run the same code (`append_at_head`, `verify_rows`), so a ledger can move
between backends entry for entry and one outside verifier serves both.

One linear chain with many appenders: each append takes `pg_advisory_xact_lock` on a
key derived from the schema name before it reads the head, so appends to one ledger
serialize across connections, threads, processes and hosts; the lock is released by the
commit that makes the entry durable. Waits for it are bounded by `lock_timeout`.

Append-only, twice over:
- triggers refuse UPDATE, DELETE and TRUNCATE, and any INSERT that is not at the head;
- grants: the service should connect as a role that is not the table owner and holds
  only USAGE on the schema and SELECT, INSERT on the table (`grant_append_only`), so it
  cannot disable the triggers or rewrite rows even if its code or credentials are abused.
A superuser can still do anything; the hash chain, the signatures and the signed
checkpoints are what expose that (`signgate audit verify`, `signgate audit check-proof`).

Calls borrow a connection from the ledger's pool (psycopg_pool; opening one costs ~18 ms,
more than a durable append) for one transaction and give it back, so one `PostgresLedger`
is safe to share between threads; `close()` closes the pool (a later call opens another).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from signgate.errors import BadInput, Fault
from signgate.ledger import (
    _COLUMNS,
    Clock,
    HeadTx,
    LedgerMissing,
    LedgerVerifyReport,
    LedgerWriter,
    utc_now,
    verify_rows,
)
from signgate.signer import KeyRing, Signer

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ROLE_NAME = _SCHEMA_NAME
CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT = "10s"
# Connections per ledger (per process): the worker's activity threads share them.
POOL_MAX = 8
VERIFY_BATCH = 2000


class LedgerUnavailable(Fault):
    """The database cannot be reached or the head lock was not had in time: retry."""

    reason = "ledger_unavailable"


def _replay_index_ddl(schema: str) -> list[str]:
    """The perceptual replay index's table, kept beside the ledger (its module imports
    this one, hence the late import)."""
    from signgate.detectors.replay_postgres import perceptual_ddl

    return perceptual_ddl(schema)


def _ddl(schema: str) -> list[str]:
    t = f"{schema}.ledger_entries"
    refuse = f"{schema}.ledger_refuse_change"
    at_head = f"{schema}.ledger_insert_at_head"
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"""CREATE TABLE IF NOT EXISTS {t} (
            seq BIGINT PRIMARY KEY CHECK (seq >= 1),
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
        f"CREATE INDEX IF NOT EXISTS ledger_entries_session ON {t} (session_id, seq)",
        f"CREATE INDEX IF NOT EXISTS ledger_entries_hash ON {t} (entry_hash)",
        f"""CREATE OR REPLACE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'ledger is append-only' USING ERRCODE = 'insufficient_privilege';
            END $$""",
        f"""CREATE OR REPLACE FUNCTION {at_head}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.seq IS DISTINCT FROM (SELECT coalesce(max(seq), 0) + 1 FROM {t}) THEN
                    RAISE EXCEPTION 'ledger is append-only: insert only at the head'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN NEW;
            END $$""",
        f"""CREATE OR REPLACE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON {t}
            FOR EACH ROW EXECUTE FUNCTION {refuse}()""",
        f"""CREATE OR REPLACE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON {t}
            FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()""",
        f"""CREATE OR REPLACE TRIGGER ledger_entries_insert_at_head BEFORE INSERT ON {t}
            FOR EACH ROW EXECUTE FUNCTION {at_head}()""",
        *_replay_index_ddl(schema),
    ]


def open_pool(dsn: str, max_size: int, **connect: Any) -> ConnectionPool[Any]:
    """Connections opened on demand that give up after CONNECT_TIMEOUT_S; one broken by a
    server restart is replaced, not handed out."""
    return ConnectionPool(
        dsn,
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, **connect},
        min_size=0,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        check=ConnectionPool.check_connection,
        open=True,
    )


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory lock key per ledger schema."""
    digest = hashlib.sha256(f"signgate.ledger:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def grant_append_only(conn: psycopg.Connection[Any], schema: str, role: str) -> None:
    """Let `role` read and append, nothing else (run as the table owner or a superuser).

    The role must not own the table: an owner can disable triggers. Advisory locks need
    no grant.
    """
    for name, value in (("schema", schema), ("role", role)):
        if not _SCHEMA_NAME.fullmatch(value):
            raise BadInput(f"invalid {name} name {value!r}", reason="bad_input")
    for statement in _replay_index_ddl(schema):  # a ledger made before the index had none
        conn.execute(statement)
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    for t in (f"{schema}.ledger_entries", f"{schema}.perceptual_hashes"):
        conn.execute(f"REVOKE ALL ON {t} FROM {role}")
        conn.execute(f"GRANT SELECT, INSERT ON {t} TO {role}")


class PostgresLedger(LedgerWriter):
    """Append-only audit ledger in `schema.ledger_entries`; `signer=None` is read-only.

    A writer creates the schema when the table is missing (under the same advisory lock,
    so several workers starting at once do not race); a read-only ledger never creates
    anything and reports `ledger_missing` on an absent schema.
    """

    def __init__(
        self,
        dsn: str,
        schema: str,
        signer: Signer | None,
        *,
        checkpoint_every: int = 0,
        checkpoint_interval_s: float = 0,
        clock: Clock = utc_now,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise BadInput(f"invalid ledger schema name {schema!r}", reason="bad_input")
        super().__init__(
            f"{schema}.ledger_entries", "%s", signer, checkpoint_every, checkpoint_interval_s, clock
        )
        self._dsn = dsn
        self._schema = schema
        self._lock_key = lock_key(schema)
        self._pool: ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()
        if signer is not None:
            self._create_schema()

    def close(self) -> None:
        """Close the pool's connections; a later call opens a new pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _pooled(self) -> ConnectionPool[Any]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = open_pool(
                    self._dsn, POOL_MAX, options=f"-c lock_timeout={LOCK_TIMEOUT}"
                )
            return self._pool

    @property
    def schema(self) -> str:
        return self._schema

    # ------------------------------------------------------------------ writing

    def grant_append_only(self, role: str) -> None:
        """`grant_append_only` on this ledger's schema (connect as the owner to call it)."""
        with self._connect() as conn:
            grant_append_only(conn, self._schema, role)

    @contextmanager
    def _head_tx(self) -> Iterator[HeadTx]:
        with self._connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield HeadTx(conn, self._table, self._ph)

    # ------------------------------------------------------------------ verifying

    def verify(self, keyring: KeyRing) -> LedgerVerifyReport:
        """The shared `verify_rows` over one REPEATABLE READ snapshot, streamed."""
        try:
            with self._connect() as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                with conn.cursor(name="signgate_verify") as cursor:
                    cursor.itersize = VERIFY_BATCH
                    cursor.execute(
                        f"SELECT {_COLUMNS} FROM {self._table} WHERE seq >= 1 ORDER BY seq"
                    )
                    report = verify_rows(cursor, keyring)
                if not report.ok:
                    return report
                stray = conn.execute(f"SELECT min(seq) FROM {self._table} WHERE seq < 1")
                first_stray = stray.fetchone()
                if first_stray is not None and first_stray[0] is not None:
                    return LedgerVerifyReport(
                        ok=False,
                        entries_checked=report.entries_checked,
                        first_bad_seq=first_stray[0],
                        reason="seq_out_of_range",
                    )
                return report
        except LedgerMissing as err:
            return LedgerVerifyReport(ok=False, entries_checked=0, reason=err.reason)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        """One pooled connection and one transaction: committed on success, rolled back on
        error. A pool that cannot connect in time raises PoolTimeout, an OperationalError."""
        try:
            with self._pooled().connection() as conn:
                yield conn
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName) as err:
            raise LedgerMissing(f"no ledger in schema {self._schema!r}") from err
        except (pg_errors.LockNotAvailable, psycopg.OperationalError) as err:
            raise LedgerUnavailable(f"ledger database unavailable: {err}") from err

    def _create_schema(self) -> None:
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (self._table,)).fetchone()
            if exists is not None and exists[0] is not None:
                return  # an append-only role may lack CREATE; the owner made it already
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            for statement in _ddl(self._schema):
                conn.execute(statement)
