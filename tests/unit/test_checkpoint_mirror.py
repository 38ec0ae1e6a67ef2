"""Checkpoints mirrored write-once to a directory; a disagreeing copy is a fork."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from signgate.audit_proofs import ProofInvalid, check_proof
from signgate.checkpoint_mirror import (
    CheckpointFork,
    DirectoryMirror,
    checkpoint_name,
    mirror_checkpoints,
)
from signgate.ledger import SqliteLedger
from signgate.settings import get_settings
from signgate.signer import PUBLIC_SUFFIX, KeyRing, Signer


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def ledger(tmp_path: Path, signer: Signer) -> SqliteLedger:
    made = SqliteLedger(tmp_path / "l.db", signer, checkpoint_every=3)
    for i in range(7):
        made.append("s", "decision", f"k{i}", {"i": i})
    return made  # checkpoints of tree sizes 3 and 7


def test_mirror_writes_each_checkpoint_once(
    ledger: SqliteLedger, signer: Signer, tmp_path: Path
) -> None:
    mirror = DirectoryMirror(tmp_path / "mirror")
    assert mirror_checkpoints(ledger, mirror) == 2
    assert mirror_checkpoints(ledger, mirror) == 0
    names = sorted(p.name for p in (tmp_path / "mirror").iterdir())
    assert names == [checkpoint_name(3), checkpoint_name(7)]
    ledger.checkpoint()
    assert mirror_checkpoints(ledger, mirror) == 1
    keyring = KeyRing.from_pems([signer.public_key_pem()])
    document = json.loads((tmp_path / "mirror" / checkpoint_name(7)).read_text())
    assert "7 entries" in check_proof(document, keyring)
    document["checkpoint"]["root_hash"] = "00" * 32
    with pytest.raises(ProofInvalid) as err:
        check_proof(document, keyring)
    assert err.value.reason == "checkpoint_signature_invalid"


def test_a_copy_that_disagrees_with_the_ledger_is_a_fork(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    mirror = DirectoryMirror(tmp_path / "mirror")
    mirror_checkpoints(ledger, mirror)
    copy = tmp_path / "mirror" / checkpoint_name(3)
    copy.chmod(0o644)
    copy.write_text(copy.read_text().replace('"ledger_seq":4', '"ledger_seq":5'))
    with pytest.raises(CheckpointFork):
        mirror_checkpoints(ledger, mirror)


def test_cli_mirror_checkpoints(
    ledger: SqliteLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["audit", "mirror-checkpoints", str(tmp_path / "m"), "--ledger", str(ledger.path)]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert "2 checkpoints written" in first.output
        public = tmp_path / "keys" / f"signgate{PUBLIC_SUFFIX}"
        checked = runner.invoke(
            app,
            [
                "audit",
                "check-proof",
                str(tmp_path / "m" / checkpoint_name(3)),
                "--public-key",
                str(public),
            ],
        )
        assert checked.exit_code == 0, checked.output
    finally:
        get_settings.cache_clear()
