"""Ledger: signed appends per second on SQLite (WAL, synchronous=FULL) against plain
inserts of the same rows, and `audit verify` entries per second against reading them.

Baselines, same file system, same run:
- plain insert: the same columns and indexes, no triggers, one `BEGIN IMMEDIATE ... COMMIT`
  per row on one open connection, the same pragmas: what any durable append costs.
- plain insert, a connection per row: as above, but opening the file for every row, as
  `SqliteLedger.append` does; separates the connection cost from hashing and signing.
- verify: reading every row and parsing its body (what any check must at least do).

On PostgreSQL (`SIGNGATE_POSTGRES_DSN`, 127.0.0.1:5432 `test` by default), in a scratch
schema dropped afterwards: plain inserts of the same rows (one connection, one
transaction per row) against `PostgresLedger.append` with 1 and with 8 concurrent
appenders (threads, one chain: appends serialize on the ledger's advisory lock).

Run: .venv/bin/python -m bench.ledger [--entries N]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.results import Result, ratio
from signgate.canonical import canonical_json
from signgate.ledger import SqliteLedger
from signgate.settings import Settings
from signgate.signer import KeyRing, Signer

PLAIN_SCHEMA = (
    """CREATE TABLE plain (seq INTEGER PRIMARY KEY, session_id TEXT NOT NULL,
    entry_type TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    body TEXT NOT NULL, prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL,
    key_id TEXT NOT NULL, signature_b64 TEXT NOT NULL)""",
    "CREATE INDEX plain_session ON plain (session_id, seq)",
    "CREATE INDEX plain_hash ON plain (entry_hash)",
)


def sample_body(i: int) -> dict[str, object]:
    """A decision-sized body (~1 KB canonical JSON), like the saga's `decision` entries."""
    return {
        "tenant_id": "demo",
        "mode": "enforce",
        "decision": {"action": "accept", "tier": "green", "risk_score": 0.04, "reasons": ["ok"]},
        "checks": [
            {
                "kind": k,
                "status": "completed",
                "risk_score": 0.03,
                "provider": "sandbox",
                "model_version": "sandbox-1.0",
                "raw_response_sha256": "ab" * 32,
            }
            for k in ("liveness", "deepfake", "face_match", "device", "provenance")
        ],  # fmt: skip
        "evidence_merkle_roots": [f"{i:064x}"],
    }


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def plain_row(i: int) -> tuple[object, ...]:
    body = canonical_json(sample_body(i)).decode()
    return (i, f"s{i}", "decision", f"s{i}:decision", "2026-11-23T00:00:00", body,
            "0" * 64, f"{i:064x}", "k", "A" * 88)  # fmt: skip


def plain_inserts(path: Path, n: int, reconnect: bool) -> float:
    conn = connect(path)
    for statement in PLAIN_SCHEMA:
        conn.execute(statement)
    started = time.perf_counter()
    for i in range(1, n + 1):
        if reconnect:
            conn.close()
            conn = connect(path)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO plain VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", plain_row(i))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


def signed_appends(ledger: SqliteLedger, n: int) -> float:
    started = time.perf_counter()
    for i in range(1, n + 1):
        ledger.append(f"s{i}", "decision", f"s{i}:decision", sample_body(i))
    return n / (time.perf_counter() - started)


def read_all(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM ledger_entries ORDER BY seq").fetchall()
    return sum(1 for row in rows if json.loads(row[5]))


def rate(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def pg_plain_inserts(dsn: str, schema: str, n: int) -> float:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        for statement in PLAIN_SCHEMA:
            conn.execute(statement)
        started = time.perf_counter()
        for i in range(1, n + 1):
            with conn.transaction():
                conn.execute(
                    "INSERT INTO plain VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    plain_row(i),
                )
        return n / (time.perf_counter() - started)


def pg_signed_appends(
    dsn: str, schema: str, signer: Signer, keyring: KeyRing, n: int, appenders: int
) -> float:
    from signgate.ledger_postgres import PostgresLedger

    ledger = PostgresLedger(dsn, schema, signer)
    per = n // appenders

    def append_some(worker: int) -> None:
        for i in range(per):
            key = f"w{worker}-{i}"
            ledger.append(key, "decision", f"{key}:decision", sample_body(i))

    started = time.perf_counter()
    with ThreadPoolExecutor(appenders) as pool:
        list(pool.map(append_some, range(appenders)))
    elapsed = time.perf_counter() - started
    report = ledger.verify(keyring)
    ledger.close()
    assert report.ok and report.entries_checked == per * appenders, report
    return per * appenders / elapsed


def postgres_rows(root: Path, entries: int) -> list[list[str]]:
    """The PostgreSQL rows, or one row saying why there are none (no server reachable)."""
    import psycopg

    dsn = Settings().postgres_dsn
    schemas = [f"bench_{name}_{secrets.token_hex(4)}" for name in ("plain", "one", "eight")]
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        return [["PostgreSQL", "not reachable", str(err).splitlines()[0]]]
    signer = Signer.load_or_create(root / "pg-keys")
    keyring = KeyRing.from_dir(root / "pg-keys")
    try:
        plain = pg_plain_inserts(dsn, schemas[0], entries)
        one = pg_signed_appends(dsn, schemas[1], signer, keyring, entries, 1)
        eight = pg_signed_appends(dsn, schemas[2], signer, keyring, entries, 8)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return [
        ["PostgreSQL: plain insert, one connection (baseline)", f"{plain:,.0f}", "1.00x"],
        ["PostgreSQL: **signed append**, 1 appender", f"**{one:,.0f}**", ratio(one, plain)],
        ["PostgreSQL: **signed append**, 8 concurrent appenders", f"**{eight:,.0f}**",
         ratio(eight, plain)],
    ]  # fmt: skip


def run(entries: int = 2000) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = Path(tmp)
        plain = plain_inserts(root / "plain.sqlite3", entries, reconnect=False)
        plain_reconnect = plain_inserts(root / "plain2.sqlite3", entries, reconnect=True)
        signer = Signer.load_or_create(root / "keys")
        ledger = SqliteLedger(root / "ledger.sqlite3", signer)
        signed = signed_appends(ledger, entries)
        keyring = KeyRing.from_dir(root / "keys")
        report = ledger.verify(keyring)
        assert report.ok and report.entries_checked == entries, report
        verify = rate(lambda: ledger.verify(keyring), entries)
        read = rate(lambda: read_all(root / "ledger.sqlite3"), entries)
        started = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "cli", "audit", "verify", "--ledger", str(ledger.path),
             "--keys", str(root / "keys")],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        cli_s = time.perf_counter() - started
        assert cli.returncode == 0, cli.stderr
        pg_rows = postgres_rows(root, entries)
    cli_rate = entries / cli_s
    rows = [
        ["plain insert, one connection (baseline)", f"{plain:,.0f}", "1.00x"],
        ["plain insert, a connection per row", f"{plain_reconnect:,.0f}",
         ratio(plain_reconnect, plain)],
        ["**signed append** (`SqliteLedger.append`)", f"**{signed:,.0f}**", ratio(signed, plain)],
        ["read + parse every entry (baseline)", f"{read:,.0f}", "1.00x"],
        ["**verify** (`SqliteLedger.verify`)", f"**{verify:,.0f}**", ratio(verify, read)],
        ["`signgate audit verify` (CLI, with start-up)", f"{cli_rate:,.0f}", ratio(cli_rate, read)],
        *pg_rows,
    ]  # fmt: skip
    return Result(
        title="4. Ledger: signed appends and verification (SQLite, PostgreSQL)",
        notes=(
            f"{entries} entries of ~1 KB (decision-sized bodies), one transaction per entry. "
            "SQLite: WAL, `synchronous=FULL`. PostgreSQL: the local server (trust auth, "
            "default `fsync`/`synchronous_commit`), a scratch schema per row; each "
            "`PostgresLedger.append` borrows a pooled connection and takes the ledger's "
            "advisory lock, so 8 appenders share one chain and serialize on it."
        ),
        header=["operation", "entries/s", "x baseline"],
        rows=rows,
        plot={"ledger append/s": signed, "plain insert/s": plain, "verify entries/s": verify},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    run(parser.parse_args().entries).print()


if __name__ == "__main__":
    main()
