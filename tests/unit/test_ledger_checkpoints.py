"""Signed checkpoints in the ledger, inclusion/consistency proofs, and their CLI (SQLite).

The same proofs on PostgreSQL are in tests/pg/test_ledger_postgres.py.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from signgate.audit_proofs import (
    ProofError,
    ProofInvalid,
    check_proof,
    prove_consistency,
    prove_inclusion,
)
from signgate.canonical import canonical_json
from signgate.checkpoints import CHECKPOINT_SESSION, CHECKPOINT_TYPE, sign_tree_head
from signgate.errors import BadInput
from signgate.hashing import merkle_root
from signgate.ledger import Ledger, SqliteLedger, chain_hash, entry_bytes, open_ledger
from signgate.settings import get_settings
from signgate.signer import PUBLIC_SUFFIX, KeyRing, Signer


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def keyring(signer: Signer) -> KeyRing:
    return KeyRing.from_pems([signer.public_key_pem()])


def fill(ledger: SqliteLedger, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        ledger.append(f"s{i % 3}", "decision", f"key-{i}", {"i": i})


@pytest.fixture
def ledger(tmp_path: Path, signer: Signer) -> SqliteLedger:
    """10 entries with a checkpoint every 4: checkpoints at seq 5 (size 4), 10 (size 9)."""
    made = SqliteLedger(tmp_path / "l.db", signer, checkpoint_every=4)
    fill(made, 10)
    return made


def test_checkpoints_are_written_every_n_entries_and_verify(
    ledger: SqliteLedger, keyring: KeyRing
) -> None:
    checkpoints = ledger.entries(CHECKPOINT_SESSION)
    assert [(c.seq, c.body["tree_size"]) for c in checkpoints] == [(5, 4), (10, 9)]
    assert all(c.entry_type == CHECKPOINT_TYPE for c in checkpoints)
    hashes = [e.entry_hash for e in ledger.entries()]
    assert checkpoints[1].body["root_hash"] == merkle_root(hashes[:9])
    assert ledger.head() is not None and ledger.head().seq == 12  # type: ignore[union-attr]
    report = ledger.verify(keyring)
    assert report.ok and report.entries_checked == 12


def test_forced_checkpoint_covers_the_head_once(ledger: SqliteLedger) -> None:
    first = ledger.checkpoint()
    assert first is not None and first.seq == 13
    assert ledger.checkpoint() == first  # nothing new to cover: no second checkpoint
    assert ledger.get(13).body["tree_size"] == 12  # type: ignore[union-attr]


def test_empty_ledger_has_nothing_to_checkpoint(tmp_path: Path, signer: Signer) -> None:
    assert SqliteLedger(tmp_path / "e.db", signer).checkpoint() is None


def test_callers_cannot_write_into_the_checkpoint_session(ledger: SqliteLedger) -> None:
    with pytest.raises(BadInput):
        ledger.append(CHECKPOINT_SESSION, CHECKPOINT_TYPE, "forged", {"tree_size": 1})


def _raw_append(ledger: SqliteLedger, signer: Signer, session: str, etype: str, body: Any) -> None:
    """Append a correctly chained and signed row by hand: a dishonest writer with the key."""
    head = ledger.head()
    assert head is not None
    seq, created = head.seq + 1, "2026-01-01T00:00:00.000000+00:00"
    digest = chain_hash(head.entry_hash, entry_bytes(seq, session, etype, f"k{seq}", created, body))
    sig = base64.b64encode(signer.sign(bytes.fromhex(digest))).decode()
    row = (seq, session, etype, f"k{seq}", created, canonical_json(body).decode())
    with closing(sqlite3.connect(ledger.path, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO ledger_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row, head.entry_hash, digest, signer.key_id, sig),
        )


@pytest.mark.parametrize(
    ("make_body", "reason"),
    [
        (lambda s, h: sign_tree_head(s, h[:-1], "t").model_dump(), "checkpoint_tree_size_mismatch"),
        (
            lambda s, h: sign_tree_head(s, [*h[:-1], "0" * 64], "t").model_dump(),
            "checkpoint_root_mismatch",
        ),
        (
            lambda s, h: {**sign_tree_head(s, h, "t").model_dump(), "timestamp": "u"},
            "checkpoint_signature_invalid",
        ),
        (lambda s, h: {"tree_size": "many"}, "checkpoint_malformed"),
    ],
)
def test_verify_rejects_a_checkpoint_that_does_not_match_its_entries(
    ledger: SqliteLedger, signer: Signer, keyring: KeyRing, make_body: Any, reason: str
) -> None:
    hashes = [e.entry_hash for e in ledger.entries()]
    _raw_append(ledger, signer, CHECKPOINT_SESSION, CHECKPOINT_TYPE, make_body(signer, hashes))
    report = ledger.verify(keyring)
    assert not report.ok
    assert (report.first_bad_seq, report.reason) == (13, reason)


# --------------------------------------------------------------------------- proofs


def test_every_covered_entry_has_a_valid_inclusion_proof(
    ledger: SqliteLedger, keyring: KeyRing
) -> None:
    for seq in range(1, 10):
        proof = prove_inclusion(ledger, seq)
        assert (proof.leaf_index, proof.tree_size, proof.checkpoint_seq) == (seq - 1, 9, 10)
        document = json.loads(proof.model_dump_json())
        assert f"entry {seq} " in check_proof(document, keyring)


def test_an_entry_after_the_latest_checkpoint_cannot_be_proven_yet(ledger: SqliteLedger) -> None:
    with pytest.raises(ProofError) as err:
        prove_inclusion(ledger, 11)
    assert err.value.reason == "checkpoint_missing"
    ledger.checkpoint()
    assert prove_inclusion(ledger, 11).tree_size == 12


def _tampered(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("entry.body.i", 999, "entry_hash_mismatch"),
        ("entry.session_id", "someone-else", "entry_hash_mismatch"),
        ("leaf_index", 5, "leaf_index_mismatch"),
        ("tree_size", 8, "tree_size_mismatch"),
        ("checkpoint.tree_size", 8, "checkpoint_signature_invalid"),
        ("checkpoint.root_hash", "ab" * 32, "checkpoint_signature_invalid"),
        ("audit_path.0", "cd" * 32, "not_included"),
        ("audit_path.0", "cd", "proof_malformed"),
        ("kind", "something/v9", "proof_malformed"),
    ],
)
def test_a_tampered_inclusion_proof_fails_with_a_reason(
    ledger: SqliteLedger, keyring: KeyRing, path: str, value: Any, reason: str
) -> None:
    document = json.loads(prove_inclusion(ledger, 3).model_dump_json())
    check_proof(document, keyring)
    with pytest.raises(ProofInvalid) as err:
        check_proof(_tampered(document, path, value), keyring)
    assert err.value.reason == reason


def test_an_entry_rehashed_after_tampering_still_fails_on_its_signature(
    ledger: SqliteLedger, keyring: KeyRing
) -> None:
    document = json.loads(prove_inclusion(ledger, 3).model_dump_json())
    entry = document["entry"]
    entry["body"] = {"i": 999}
    entry["entry_hash"] = chain_hash(
        entry["prev_hash"],
        entry_bytes(
            3,
            entry["session_id"],
            entry["entry_type"],
            entry["idempotency_key"],
            entry["created_at"],
            entry["body"],
        ),
    )
    with pytest.raises(ProofInvalid) as err:
        check_proof(document, keyring)
    assert err.value.reason == "signature_invalid"


def test_a_proof_checked_with_another_key_fails(ledger: SqliteLedger, tmp_path: Path) -> None:
    stranger = KeyRing.from_pems([Signer.load_or_create(tmp_path / "other").public_key_pem()])
    document = json.loads(prove_inclusion(ledger, 3).model_dump_json())
    with pytest.raises(ProofInvalid) as err:
        check_proof(document, stranger)
    assert err.value.reason == "unknown_key"


def test_consistency_between_checkpoints(ledger: SqliteLedger, keyring: KeyRing) -> None:
    ledger.checkpoint()
    for old, new in ((4, 9), (4, 12), (9, 12), (9, 9)):
        document = json.loads(prove_consistency(ledger, old, new).model_dump_json())
        assert "is a prefix" in check_proof(document, keyring)
    document = json.loads(prove_consistency(ledger, 4, 12).model_dump_json())
    swapped = {**document, "old": document["new"], "new": document["old"]}
    for bad, reason in (
        (_tampered(document, "consistency_path.0", "ee" * 32), "not_consistent"),
        (_tampered(document, "old.root_hash", "ee" * 32), "checkpoint_signature_invalid"),
        (swapped, "not_consistent"),
    ):
        with pytest.raises(ProofInvalid) as err:
            check_proof(bad, keyring)
        assert err.value.reason == reason
    with pytest.raises(ProofError):
        prove_consistency(ledger, 5, 9)  # no checkpoint of size 5


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNGATE_LEDGER", "sqlite")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_checkpoint_prove_and_check_proof(
    ledger: SqliteLedger, tmp_path: Path, cli_env: None
) -> None:
    runner = CliRunner()
    db = ["--ledger", str(ledger.path)]
    made = runner.invoke(app, ["audit", "checkpoint", *db])
    assert made.exit_code == 0, made.output
    assert "seq 13 covers entries 1..12" in made.output

    proof_file = tmp_path / "proof.json"
    proved = runner.invoke(app, ["audit", "prove", "11", "--out", str(proof_file), *db])
    assert proved.exit_code == 0, proved.output
    public = tmp_path / "keys" / f"signgate{PUBLIC_SUFFIX}"
    checked = runner.invoke(
        app, ["audit", "check-proof", str(proof_file), "--public-key", str(public)]
    )
    assert checked.exit_code == 0, checked.output
    assert "entry 11 " in checked.output

    document = json.loads(proof_file.read_text())
    document["entry"]["body"]["i"] = 0
    proof_file.write_text(json.dumps(document))
    bad = runner.invoke(app, ["audit", "check-proof", str(proof_file), "--public-key", str(public)])
    assert bad.exit_code == 1
    assert "entry_hash_mismatch" in bad.output

    consistency = runner.invoke(app, ["audit", "prove-consistency", "4", "12", *db])
    assert consistency.exit_code == 0, consistency.output
    proof_file.write_text(consistency.stdout)
    ok = runner.invoke(app, ["audit", "check-proof", str(proof_file), "--public-key", str(public)])
    assert ok.exit_code == 0 and "is a prefix" in ok.output

    missing = runner.invoke(app, ["audit", "prove", "99", *db])
    assert missing.exit_code == 2 and "entry_missing" in missing.output


class StepClock:
    """A clock the test moves by hand, so "T seconds later" needs no sleep."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def checkpoint_sizes(ledger: Ledger) -> list[int]:
    return [entry.body["tree_size"] for entry in ledger.entries(CHECKPOINT_SESSION)]


def assert_checkpoints_by_time(make: Callable[[StepClock], Ledger], keyring: KeyRing) -> None:
    """Shared by the SQLite test here and the PostgreSQL one in tests/pg."""
    clock = StepClock()
    ledger = make(clock)
    ledger.append("s", "decision", "k1", {"i": 1})
    clock.advance(59)
    ledger.append("s", "decision", "k2", {"i": 2})
    assert checkpoint_sizes(ledger) == []  # first entry only 59 s old: not yet
    clock.advance(1)
    ledger.append("s", "decision", "k3", {"i": 3})
    assert checkpoint_sizes(ledger) == [3]  # 60 s since the first entry: due
    first = ledger.entries(CHECKPOINT_SESSION)[0]
    assert first.body["timestamp"] == clock.now.isoformat(timespec="microseconds")
    clock.advance(30)
    ledger.append("s", "decision", "k4", {"i": 4})
    clock.advance(29.9)
    ledger.append("s", "decision", "k5", {"i": 5})
    assert checkpoint_sizes(ledger) == [3]  # the checkpoint is 59.9 s old
    clock.advance(0.1)
    ledger.append("s", "decision", "k6", {"i": 6})
    assert checkpoint_sizes(ledger) == [3, 7]  # measured from the checkpoint, not entry 1
    assert ledger.append("s", "decision", "k6", {"i": 6}).seq == 7  # idempotent replay
    assert checkpoint_sizes(ledger) == [3, 7]
    assert ledger.verify(keyring).ok


def test_a_checkpoint_is_appended_by_time_and_not_before(
    tmp_path: Path, signer: Signer, keyring: KeyRing
) -> None:
    assert_checkpoints_by_time(
        lambda clock: SqliteLedger(
            tmp_path / "l.db", signer, checkpoint_interval_s=60, clock=clock
        ),
        keyring,
    )


def test_interval_zero_never_checkpoints_by_time(tmp_path: Path, signer: Signer) -> None:
    clock = StepClock()
    ledger = SqliteLedger(tmp_path / "l.db", signer, checkpoint_interval_s=0, clock=clock)
    for i in range(3):
        ledger.append("s", "decision", f"k{i}", {"i": i})
        clock.advance(86_400)
    assert checkpoint_sizes(ledger) == []


def test_settings_carry_the_interval_to_the_ledger(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNGATE_CHECKPOINT_INTERVAL_S", "0.001")
    monkeypatch.setenv("SIGNGATE_CHECKPOINT_EVERY", "0")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.checkpoint_interval_s == 0.001
        ledger = open_ledger(settings, signer, sqlite_path=tmp_path / "l.db")
        ledger.append("s", "decision", "k1", {"i": 1})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not checkpoint_sizes(ledger):
            time.sleep(0.01)
            ledger.append("s", "decision", f"k-{time.monotonic_ns()}", {"i": 2})
        assert checkpoint_sizes(ledger)
    finally:
        get_settings.cache_clear()
