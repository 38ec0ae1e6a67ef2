"""PostgresLedger on the real server: same semantics as SQLite, one chain under
concurrency, append-only by triggers and by grants, tampering caught by the CLI, proofs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo

from signgate.audit_proofs import check_proof, prove_inclusion
from signgate.checkpoints import CHECKPOINT_SESSION
from signgate.ledger import LedgerConflict, LedgerReadOnly, SqliteLedger, open_ledger
from signgate.ledger_postgres import PostgresLedger
from signgate.ledger_signer import newest_receipt, open_signing_ledger
from signgate.settings import Settings
from signgate.signer import PUBLIC_SUFFIX, KeyRing, Signer, SigningKeyMissing
from tests.pg.conftest import superuser
from tests.unit.test_ledger_checkpoints import assert_checkpoints_by_time

SIGNGATE = [sys.executable, "-m", "cli"]
APPENDERS = 8
PER_APPENDER = 500
EVERY = 64


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def keyring(signer: Signer) -> KeyRing:
    return KeyRing.from_pems([signer.public_key_pem()])


def fill(ledger: PostgresLedger | SqliteLedger, n: int) -> None:
    for i in range(1, n + 1):
        ledger.append(f"s{i % 2}", "decision", f"key-{i}", {"i": i, "note": f"entry {i}"})


def cli_env(tmp_path: Path, pg_dsn: str, schema: str) -> dict[str, str]:
    return {
        **os.environ,
        "SIGNGATE_VAR_DIR": str(tmp_path),
        "SIGNGATE_LEDGER": "postgres",
        "SIGNGATE_POSTGRES_DSN": pg_dsn,
        "SIGNGATE_LEDGER_SCHEMA": schema,
    }


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIGNGATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_factory_picks_postgres_and_reads_match_sqlite(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing, tmp_path: Path
) -> None:
    settings = Settings(
        var_dir=tmp_path, ledger="postgres", postgres_dsn=pg_dsn, ledger_schema=pg_schema
    )
    ledger = open_ledger(settings, signer)
    assert isinstance(ledger, PostgresLedger)
    fill(ledger, 5)
    lite = SqliteLedger(tmp_path / "l.db", signer)
    fill(lite, 5)

    third = ledger.get(3)
    assert third is not None and third.body == {"i": 3, "note": "entry 3"}
    assert ledger.find_by_hash(third.entry_hash) == third
    assert ledger.receipt_for("key-3") == ledger.append("s1", "decision", "key-3", third.body)
    assert [e.seq for e in ledger.entries("s0")] == [2, 4]
    head = ledger.head()
    assert head is not None and head.seq == 5
    with pytest.raises(LedgerConflict):
        ledger.append("s1", "decision", "key-3", {"i": 4})
    # Same entry bytes, same formula: only time and chain differ from SQLite's rows.
    assert [(e.seq, e.session_id, e.body) for e in ledger.entries()] == [
        (e.seq, e.session_id, e.body) for e in lite.entries()
    ]
    assert ledger.verify(keyring).ok and ledger.verify(keyring).entries_checked == 5

    reader = open_ledger(settings, None)
    assert reader.entries() == ledger.entries()
    with pytest.raises(LedgerReadOnly):
        reader.append("s", "t", "k", {})


def test_a_reader_on_a_missing_schema_reports_it_and_creates_nothing(
    pg_dsn: str, pg_schema: str, keyring: KeyRing
) -> None:
    report = PostgresLedger(pg_dsn, pg_schema, None).verify(keyring)
    assert (report.ok, report.reason) == (False, "ledger_missing")
    with superuser(pg_dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema,)).fetchone()
    assert row is None


def test_a_writer_whose_keys_the_postgres_ledger_does_not_know_refuses(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    """The guard reads the head from PostgreSQL as from SQLite: on a fresh schema the first
    key is minted; with the keys directory lost, nothing is minted and nothing appended."""
    settings = Settings(
        var_dir=tmp_path / "var", ledger="postgres", postgres_dsn=pg_dsn, ledger_schema=pg_schema
    )
    assert newest_receipt(settings) is None  # no schema yet
    ledger, signer = open_signing_ledger(settings)
    assert isinstance(ledger, PostgresLedger)
    fill(ledger, 3)
    ledger.close()
    shutil.rmtree(settings.keys_dir)
    with pytest.raises(SigningKeyMissing) as refused:
        open_signing_ledger(settings)
    assert signer.key_id in refused.value.message and "seq 3" in refused.value.message
    assert not settings.keys_dir.exists()
    head = newest_receipt(settings)
    assert head is not None and head.seq == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET body = '{{}}' WHERE seq = 2",
        "DELETE FROM {t} WHERE seq = 2",
        "TRUNCATE {t}",
        "INSERT INTO {t} SELECT seq + 10, session_id, entry_type, idempotency_key || 'x',"
        " created_at, body, prev_hash, entry_hash, key_id, signature_b64 FROM {t} WHERE seq = 1",
        "INSERT INTO {t} SELECT 2, session_id, entry_type, 'y', created_at, body, prev_hash,"
        " entry_hash, key_id, signature_b64 FROM {t} WHERE seq = 1"
        " ON CONFLICT (seq) DO UPDATE SET body = '{{}}'",
    ],
)
def test_triggers_refuse_rewrites_even_for_the_owner(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing, statement: str
) -> None:
    ledger = PostgresLedger(pg_dsn, pg_schema, signer)
    fill(ledger, 3)
    with superuser(pg_dsn) as conn, pytest.raises(pg_errors.InsufficientPrivilege) as err:
        conn.execute(statement.format(t=f"{pg_schema}.ledger_entries"))
    assert "append-only" in str(err.value)
    assert ledger.verify(keyring).entries_checked == 3


def test_the_app_role_may_only_insert_and_select(
    pg_dsn: str, pg_schema: str, pg_role: str, signer: Signer, keyring: KeyRing
) -> None:
    owner = PostgresLedger(pg_dsn, pg_schema, signer)
    owner.grant_append_only(pg_role)
    app_dsn = make_conninfo(pg_dsn, user=pg_role)
    app = PostgresLedger(app_dsn, pg_schema, signer)  # the table exists: no DDL needed
    fill(app, 3)
    assert app.verify(keyring).entries_checked == 3
    table = f"{pg_schema}.ledger_entries"
    for attack in (
        f"ALTER TABLE {table} DISABLE TRIGGER USER",
        f"UPDATE {table} SET body = '{{}}' WHERE seq = 1",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
        f"DROP TABLE {table}",
    ):
        with psycopg.connect(app_dsn, autocommit=True) as conn:
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(attack)
    assert app.verify(keyring).ok


@pytest.mark.timeout(900)  # 4000 serialized commits on a shared, busy server
def test_eight_concurrent_appenders_make_one_linear_chain(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing
) -> None:
    PostgresLedger(pg_dsn, pg_schema, signer, checkpoint_every=EVERY)
    barrier = threading.Barrier(APPENDERS)
    errors: list[BaseException] = []

    def appender(worker: int) -> None:
        # Its own ledger object: every call is its own connection, as in another process.
        ledger = PostgresLedger(pg_dsn, pg_schema, signer, checkpoint_every=EVERY)
        try:
            barrier.wait(timeout=30)
            for i in range(PER_APPENDER):
                ledger.append(f"w{worker}", "decision", f"w{worker}-{i}", {"w": worker, "i": i})
        except BaseException as err:  # reported below, never swallowed
            errors.append(err)

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(APPENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    ledger = PostgresLedger(pg_dsn, pg_schema, None)
    total = APPENDERS * PER_APPENDER
    checkpoints = total // EVERY
    report = ledger.verify(keyring)
    assert report.ok, report
    assert report.entries_checked == total + checkpoints
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(1, total + checkpoints + 1))  # no gap
    assert len({e.prev_hash for e in entries}) == len(entries)  # no fork
    for worker in range(APPENDERS):  # each appender's entries, each once, in its order
        own = [e.body["i"] for e in entries if e.session_id == f"w{worker}"]
        assert own == list(range(PER_APPENDER))
    sizes = [e.body["tree_size"] for e in ledger.entries(CHECKPOINT_SESSION)]
    assert len(sizes) == checkpoints
    # checkpoint k covers (k + 1) * EVERY appended entries plus the k checkpoints before it
    assert sizes == [(k + 1) * EVERY + k for k in range(checkpoints)]


def test_superuser_tampering_is_caught_by_audit_verify(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    ledger = PostgresLedger(
        pg_dsn, pg_schema, Signer.load_or_create(tmp_path / "keys"), checkpoint_every=4
    )
    fill(ledger, 9)
    env = cli_env(tmp_path, pg_dsn, pg_schema)
    clean = run_cli(["audit", "verify"], env)
    assert clean.returncode == 0, clean.stderr
    assert f"11 entries verified (postgres schema {pg_schema})" in clean.stdout

    table = f"{pg_schema}.ledger_entries"
    with superuser(pg_dsn) as conn:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        conn.execute(f"UPDATE {table} SET body = %s WHERE seq = 7", ('{"i":6,"note":"entry X"}',))
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    broken = run_cli(["audit", "verify"], env)
    assert broken.returncode == 1
    assert "at seq 7: entry_hash_mismatch" in broken.stderr


def test_missing_schema_is_a_usage_error_in_the_cli(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    result = run_cli(["audit", "verify"], cli_env(tmp_path, pg_dsn, pg_schema))
    assert result.returncode == 2
    assert "ledger_missing" in result.stderr


def test_proofs_from_postgres_verify_with_only_the_public_key(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing, tmp_path: Path
) -> None:
    ledger = PostgresLedger(pg_dsn, pg_schema, signer, checkpoint_every=4)
    fill(ledger, 10)
    for seq in range(1, 10):
        document = json.loads(prove_inclusion(ledger, seq).model_dump_json())
        check_proof(document, keyring)

    env = cli_env(tmp_path, pg_dsn, pg_schema)
    assert run_cli(["audit", "checkpoint"], env).returncode == 0
    proof = tmp_path / "proof.json"
    made = run_cli(["audit", "prove", "12", "--out", str(proof)], env)
    assert made.returncode == 0, made.stderr
    assert json.loads(proof.read_text())["tree_size"] == 12
    public = str(tmp_path / "keys" / f"signgate{PUBLIC_SUFFIX}")
    offline = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    offline["SIGNGATE_POSTGRES_DSN"] = "postgresql://nobody@127.0.0.1:1/none"  # unreachable
    checked = run_cli(["audit", "check-proof", str(proof), "--public-key", public], offline)
    assert checked.returncode == 0, checked.stderr
    consistency = run_cli(["audit", "prove-consistency", "4", "12"], env)
    assert consistency.returncode == 0, consistency.stderr
    proof.write_text(consistency.stdout)
    ok = run_cli(["audit", "check-proof", str(proof), "--public-key", public], offline)
    assert ok.returncode == 0 and "is a prefix" in ok.stdout


def test_checkpoints_by_time_on_postgres(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing
) -> None:
    assert_checkpoints_by_time(
        lambda clock: PostgresLedger(
            pg_dsn, pg_schema, signer, checkpoint_interval_s=60, clock=clock
        ),
        keyring,
    )


def test_appends_reuse_pooled_connections_and_survive_close(
    pg_dsn: str, pg_schema: str, signer: Signer, keyring: KeyRing
) -> None:
    ledger = PostgresLedger(pg_dsn, pg_schema, signer)
    pids = set()
    for i in range(5):
        ledger.append("s", "decision", f"k{i}", {"i": i})
        with ledger._connect() as conn:
            pids.add(conn.info.backend_pid)
    assert len(pids) == 1  # one server connection, kept between calls
    ledger.close()
    ledger.append("s", "decision", "k-after-close", {"i": 99})  # a new pool opens
    with ledger._connect() as conn:
        assert conn.info.backend_pid not in pids
    assert ledger.verify(keyring).ok and len(ledger.entries("s")) == 6
    ledger.close()
