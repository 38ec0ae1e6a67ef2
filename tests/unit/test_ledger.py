"""The audit ledger: hash chain, signatures, idempotency, append-only, tamper evidence."""

from __future__ import annotations

import base64
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signgate.canonical import canonical_json
from signgate.hashing import sha256_hex
from signgate.ledger import (
    GENESIS_PREV_HASH,
    LedgerConflict,
    LedgerReadOnly,
    SqliteLedger,
)
from signgate.signer import KeyRing, Signer

ENTRIES = 5
MIDDLE = 3


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def keyring(signer: Signer) -> KeyRing:
    return KeyRing.from_pems([signer.public_key_pem()])


def filled(path: Path, signer: Signer, n: int = ENTRIES) -> SqliteLedger:
    ledger = SqliteLedger(path, signer)
    for i in range(1, n + 1):
        ledger.append(f"s{i % 2}", "decision", f"key-{i}", {"i": i, "note": f"entry {i}"})
    return ledger


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that bypasses the ledger class: what an attacker with the file has."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def drop_triggers(path: Path) -> None:
    with raw(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for name in names:
            conn.execute(f"DROP TRIGGER {name}")


def tamper(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    drop_triggers(path)
    with raw(path) as conn:
        conn.execute(sql, params)


def flip_char(text: str, index: int, replacement: str) -> str:
    return text[:index] + replacement + text[index + 1 :]


# --------------------------------------------------------------------------- the chain


def test_chain_links_and_verifies(tmp_path: Path, signer: Signer, keyring: KeyRing) -> None:
    ledger = filled(tmp_path / "l.db", signer)
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(1, ENTRIES + 1))
    assert entries[0].prev_hash == GENESIS_PREV_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    report = ledger.verify(keyring)
    assert report.ok and report.entries_checked == ENTRIES and report.first_bad_seq is None


def test_entry_hash_follows_the_documented_formula(tmp_path: Path, signer: Signer) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", signer)
    receipt = ledger.append("sess", "evidence_sealed", "k1", {"b": 2, "a": [1.5, "x"]})
    entry = ledger.get(receipt.seq)
    assert entry is not None
    entry_bytes = canonical_json(
        {
            "seq": 1,
            "session_id": "sess",
            "entry_type": "evidence_sealed",
            "idempotency_key": "k1",
            "created_at": entry.created_at,
            "body": {"a": [1.5, "x"], "b": 2},
        }
    )
    assert receipt.entry_hash == sha256_hex(bytes(32) + entry_bytes) == entry.entry_hash
    signature = base64.b64decode(entry.signature_b64)
    signer.public_key.verify(signature, bytes.fromhex(entry.entry_hash))
    assert entry.created_at.endswith("+00:00")


def test_reads_find_entries_by_seq_hash_key_and_session(tmp_path: Path, signer: Signer) -> None:
    ledger = filled(tmp_path / "l.db", signer)
    third = ledger.get(3)
    assert third is not None and third.body == {"i": 3, "note": "entry 3"}
    assert ledger.find_by_hash(third.entry_hash) == third
    assert ledger.find_by_hash("f" * 64) is None
    receipt = ledger.receipt_for("key-3")
    assert receipt is not None and receipt.seq == 3 and receipt.entry_hash == third.entry_hash
    assert ledger.receipt_for("nope") is None
    assert [e.seq for e in ledger.entries("s1")] == [1, 3, 5]
    head = ledger.head()
    assert head is not None and head.seq == ENTRIES
    assert ledger.get(99) is None


def test_empty_ledger_has_no_head_and_verifies(tmp_path: Path, signer: Signer) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", signer)
    assert ledger.head() is None and ledger.entries() == []
    assert ledger.verify(KeyRing()).ok


# --------------------------------------------------------------------------- idempotency


def test_idempotent_append_returns_same_receipt_and_adds_no_row(
    tmp_path: Path, signer: Signer
) -> None:
    ledger = filled(tmp_path / "l.db", signer, n=2)
    first = ledger.append("s", "decision", "retry-me", {"x": 1, "y": [1, 2]})
    again = ledger.append("s", "decision", "retry-me", {"y": [1, 2], "x": 1.0})  # same JSON
    assert again == first
    assert len(ledger.entries()) == 3


@pytest.mark.parametrize(
    ("session_id", "entry_type", "body"),
    [("s", "decision", {"x": 2}), ("other", "decision", {"x": 1}), ("s", "unlock", {"x": 1})],
)
def test_same_key_with_different_entry_raises_conflict(
    tmp_path: Path, signer: Signer, session_id: str, entry_type: str, body: dict[str, Any]
) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", signer)
    ledger.append("s", "decision", "k", {"x": 1})
    with pytest.raises(LedgerConflict) as err:
        ledger.append(session_id, entry_type, "k", body)
    assert err.value.reason == "ledger_idempotency_conflict"
    assert len(ledger.entries()) == 1


def test_concurrent_retries_of_one_append_make_one_row(tmp_path: Path, signer: Signer) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", signer)
    barrier = threading.Barrier(8)
    receipts = []

    def retry() -> None:
        barrier.wait()
        receipts.append(ledger.append("s", "decision", "once", {"v": 1}))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(receipts)) == 1 and len(receipts) == 8
    assert len(ledger.entries()) == 1


def test_read_only_ledger_refuses_to_append(tmp_path: Path, signer: Signer) -> None:
    filled(tmp_path / "l.db", signer, n=1)
    reader = SqliteLedger(tmp_path / "l.db", None)
    with pytest.raises(LedgerReadOnly):
        reader.append("s", "decision", "k", {})
    assert reader.get(1) is not None


def test_read_only_ledger_on_a_missing_file_reports_it_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "absent.db"
    report = SqliteLedger(path, None).verify(KeyRing())
    assert not report.ok and report.reason == "ledger_missing"
    assert not path.exists()


# --------------------------------------------------------------------------- append-only


def test_update_is_refused_by_trigger(tmp_path: Path, signer: Signer) -> None:
    filled(tmp_path / "l.db", signer)
    with raw(tmp_path / "l.db") as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE ledger_entries SET body = '{}' WHERE seq = 2")


def test_delete_is_refused_by_trigger(tmp_path: Path, signer: Signer) -> None:
    filled(tmp_path / "l.db", signer)
    with raw(tmp_path / "l.db") as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM ledger_entries WHERE seq = 2")


def test_insert_or_replace_of_an_old_entry_is_refused(tmp_path: Path, signer: Signer) -> None:
    # REPLACE deletes without firing delete triggers; the insert-at-head trigger stops it.
    filled(tmp_path / "l.db", signer)
    with raw(tmp_path / "l.db") as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(
            "INSERT OR REPLACE INTO ledger_entries SELECT * FROM ledger_entries WHERE seq = 2"
        )


# --------------------------------------------------------------------------- tamper evidence


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("body", "entry_hash_mismatch"),
        ("entry_type", "entry_hash_mismatch"),
        ("session_id", "entry_hash_mismatch"),
        ("idempotency_key", "entry_hash_mismatch"),
        ("created_at", "entry_hash_mismatch"),
        ("entry_hash", "entry_hash_mismatch"),
        ("prev_hash", "chain_broken"),
        ("signature_b64", "signature_invalid"),
        ("key_id", "unknown_key"),
    ],
)
def test_one_changed_character_in_a_middle_entry_names_that_seq(
    tmp_path: Path, signer: Signer, keyring: KeyRing, column: str, reason: str
) -> None:
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    with raw(path) as conn:
        value = conn.execute(f"SELECT {column} FROM ledger_entries WHERE seq = ?", (MIDDLE,))
        original: str = value.fetchone()[0]
    # Mid-value; in the body, a letter inside a string, so it stays valid canonical JSON.
    index = len(original) // 2 if column != "body" else original.index("entry") + 1
    changed = flip_char(original, index, "Z" if original[index] != "Z" else "Y")
    tamper(path, f"UPDATE ledger_entries SET {column} = ? WHERE seq = ?", (changed, MIDDLE))
    report = ledger.verify(keyring)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, MIDDLE, reason)
    assert report.entries_checked == MIDDLE - 1


def test_body_whitespace_that_keeps_the_json_equal_is_still_caught(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    tamper(
        path, "UPDATE ledger_entries SET body = replace(body, ',', ', ') WHERE seq = ?", (MIDDLE,)
    )
    report = ledger.verify(keyring)
    assert (report.first_bad_seq, report.reason) == (MIDDLE, "body_not_canonical")


def test_signature_respelled_in_unused_base64_bits_is_caught(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    # 64 bytes -> 86 base64 chars + "==": the last char carries 4 unused bits, so
    # "A" -> "B" there decodes to the very same signature. It is still a changed byte.
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    entry = ledger.get(MIDDLE)
    assert entry is not None
    sig = entry.signature_b64
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelled = sig[:85] + alphabet[alphabet.index(sig[85]) ^ 1] + "=="
    assert base64.b64decode(respelled) == base64.b64decode(sig)
    tamper(path, "UPDATE ledger_entries SET signature_b64 = ? WHERE seq = ?", (respelled, MIDDLE))
    report = ledger.verify(keyring)
    assert (report.first_bad_seq, report.reason) == (MIDDLE, "signature_invalid")


def test_deleted_middle_row_is_a_seq_gap(tmp_path: Path, signer: Signer, keyring: KeyRing) -> None:
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    tamper(path, "DELETE FROM ledger_entries WHERE seq = ?", (MIDDLE,))
    report = ledger.verify(keyring)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, MIDDLE, "seq_gap")


@pytest.mark.parametrize("new_seq", [0, -7, ENTRIES + 1, 1000])
def test_renumbered_middle_row_names_its_seq(
    tmp_path: Path, signer: Signer, keyring: KeyRing, new_seq: int
) -> None:
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    tamper(path, "UPDATE ledger_entries SET seq = ? WHERE seq = ?", (new_seq, MIDDLE))
    report = ledger.verify(keyring)
    assert (report.ok, report.first_bad_seq) == (False, MIDDLE)


def test_entry_signed_by_a_key_outside_the_ring_is_unknown_key(
    tmp_path: Path, signer: Signer
) -> None:
    ledger = filled(tmp_path / "l.db", signer)
    other = Signer.load_or_create(tmp_path / "other")
    report = ledger.verify(KeyRing.from_pems([other.public_key_pem()]))
    assert (report.first_bad_seq, report.reason) == (1, "unknown_key")


def test_stray_row_before_genesis_is_reported(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    path = tmp_path / "l.db"
    ledger = filled(path, signer)
    tamper(
        path,
        "INSERT INTO ledger_entries SELECT 0, session_id, entry_type, 'x', created_at, body,"
        " prev_hash, entry_hash, key_id, signature_b64 FROM ledger_entries WHERE seq = 1",
    )
    report = ledger.verify(keyring)
    assert (report.first_bad_seq, report.reason) == (0, "seq_out_of_range")


COLUMNS = [
    "session_id",
    "entry_type",
    "idempotency_key",
    "created_at",
    "body",
    "prev_hash",
    "entry_hash",
    "key_id",
    "signature_b64",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    column=st.sampled_from(COLUMNS),
    target=st.integers(min_value=1, max_value=ENTRIES),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    replacement=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)
def test_any_changed_character_of_any_column_names_the_first_bad_seq(
    tmp_path_factory: pytest.TempPathFactory,
    signer: Signer,
    keyring: KeyRing,
    column: str,
    target: int,
    position: float,
    replacement: str,
) -> None:
    path = tmp_path_factory.mktemp("ledger") / "l.db"
    ledger = filled(path, signer)
    with raw(path) as conn:
        original: str = conn.execute(
            f"SELECT {column} FROM ledger_entries WHERE seq = ?", (target,)
        ).fetchone()[0]
    index = int(position * len(original))
    if original[index] == replacement:
        replacement = "~" if replacement != "~" else "!"
    changed = flip_char(original, index, replacement)
    tamper(path, f"UPDATE ledger_entries SET {column} = ? WHERE seq = ?", (changed, target))
    report = ledger.verify(keyring)
    assert (report.ok, report.first_bad_seq) == (False, target), report


# --------------------------------------------------------------------------- concurrency


def test_four_threads_appending_make_one_valid_linear_chain(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", signer)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        barrier.wait()
        try:
            for i in range(50):
                ledger.append(f"t{t}", "event", f"t{t}-{i}", {"t": t, "i": i})
        except BaseException as err:  # surfaced by the assert below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(1, 201))
    assert len({e.prev_hash for e in entries}) == 200  # no fork: every parent used once
    report = ledger.verify(keyring)
    assert report.ok and report.entries_checked == 200


def _append_from_other_process(db: str, keys_dir: str, barrier: Any, count: int) -> None:
    ledger = SqliteLedger(Path(db), Signer.load_or_create(Path(keys_dir)))
    barrier.wait()
    for i in range(count):
        ledger.append("proc", "event", f"proc-{i}", {"i": i})


def test_a_second_process_appending_concurrently_keeps_the_chain_valid(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    db = tmp_path / "l.db"
    ledger = SqliteLedger(db, signer)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    proc = ctx.Process(
        target=_append_from_other_process, args=(str(db), str(tmp_path / "keys"), barrier, 60)
    )
    proc.start()
    barrier.wait()
    for i in range(60):
        ledger.append("main", "event", f"main-{i}", {"i": i})
    proc.join(timeout=120)
    assert proc.exitcode == 0
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(1, 121))
    sessions = [e.session_id for e in entries]
    assert sessions.count("main") == sessions.count("proc") == 60
    report = ledger.verify(keyring)
    assert report.ok and report.entries_checked == 120


def test_a_thread_keeps_its_connection_between_appends(tmp_path: Path, signer: Signer) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3", signer)
    ledger.append("s1", "decision", "s1:decision", {"n": 1})
    with ledger._connect() as first:
        pass
    ledger.append("s2", "decision", "s2:decision", {"n": 2})
    with ledger._connect() as second:
        assert second is first
    seen: list[sqlite3.Connection] = []

    def other_thread() -> None:
        with ledger._connect() as conn:
            seen.append(conn)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen and seen[0] is not first  # sqlite3 connections stay in their thread


def test_a_replaced_ledger_file_is_never_written_through_a_kept_connection(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path, signer)
    ledger.append("s1", "decision", "s1:decision", {"n": 1})
    with ledger._connect() as kept:
        kept.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    copy = tmp_path / "copy.sqlite3"
    with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    moved = tmp_path / "moved.sqlite3"
    path.rename(moved)
    copy.rename(path)  # the path now names another file (a restore, say)
    ledger.append("s2", "decision", "s2:decision", {"n": 2})
    assert [e.seq for e in SqliteLedger(path, None).entries()] == [1, 2]
    assert [e.seq for e in SqliteLedger(moved, None).entries()] == [1]
