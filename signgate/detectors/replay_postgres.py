"""The perceptual replay index in PostgreSQL, beside the PostgreSQL ledger.

Why: with the SQLite index, workers on several hosts each checked only the captures their
own host had sealed, so a re-encoded replay of a capture sealed on another host went
unflagged. Here every worker checks against every capture sealed by any of them.

The table `<ledger schema>.perceptual_hashes` is created with the ledger's tables
(`signgate.ledger_postgres`), and `grant_append_only` lets the app role read and insert
it. Like the SQLite table it is not part of the ledger: rows are only ever inserted, but
no trigger guards them, since they prove nothing; the ledger entries do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from signgate.detectors.replay import _CHUNK_COLUMNS, INDEX_DDL, TABLE_DDL, PerceptualIndex
from signgate.errors import BadInput, Fault
from signgate.ledger_postgres import _SCHEMA_NAME, lock_key, open_pool

POOL_MAX = 4


class ReplayIndexUnavailable(Fault):
    """The database holding the index cannot be reached: retry, then fail safe to review."""

    reason = "replay_index_unavailable"


def perceptual_ddl(schema: str) -> list[str]:
    """The index's table, columns and indexes in `schema`, as in SQLite (idempotent)."""
    t = f"{schema}.perceptual_hashes"
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        TABLE_DDL.replace("{t}", t),
        *(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} INTEGER" for c in _CHUNK_COLUMNS),
        *(statement.replace("{t}", t) for statement in INDEX_DDL),
    ]


class PostgresPerceptualIndex(PerceptualIndex):
    """The index in `schema.perceptual_hashes`; pooled connections, one per call."""

    _placeholder = "%s"

    def __init__(self, dsn: str, schema: str) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise BadInput(f"invalid ledger schema name {schema!r}", reason="bad_input")
        self._schema = schema
        self._table = f"{schema}.perceptual_hashes"
        self._pool = open_pool(dsn, POOL_MAX)
        with self._write() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (self._table,)).fetchone()
            if exists is None or exists[0] is None:  # an app role may lack CREATE: owner made it
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
                try:
                    for statement in perceptual_ddl(schema):
                        conn.execute(statement)
                except pg_errors.InsufficientPrivilege as err:
                    raise ReplayIndexUnavailable(
                        f"no {self._table} and no right to create it: have the schema's owner "
                        "run grant_append_only again, which creates it"
                    ) from err

    def close(self) -> None:
        self._pool.close()

    def import_from(self, source: PerceptualIndex) -> int:
        """Copy in the rows of another index (a host's SQLite index from before the index
        moved beside the PostgreSQL ledger); rows already here are left alone. Returns how
        many were new."""
        return self._insert(source.rows())

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """One pooled connection and one transaction, committed on success."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName) as err:
            raise ReplayIndexUnavailable(f"no perceptual index in {self._schema!r}") from err
        except psycopg.OperationalError as err:
            raise ReplayIndexUnavailable(f"replay index database unavailable: {err}") from err

    def _read(self) -> Any:
        return self._write()
