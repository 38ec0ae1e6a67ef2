"""A lost or retired signing key is never replaced silently: the ledger says which key
signed last, and a writer whose keys directory lacks it refuses to start, minting nothing."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.deps import ActivityDeps
from cli.main import app
from signgate.ledger import SqliteLedger
from signgate.ledger_signer import ledger_signer, newest_receipt
from signgate.settings import Settings, get_settings
from signgate.signer import (
    PRIVATE_SUFFIX,
    KeyRing,
    Signer,
    SigningKeyMissing,
    SigningKeyRetired,
    public_pem,
    rotate_signing_key,
    signing_key_names,
)
from workers.onboarding_worker import run_worker
from workers.stack import embedded_stack

SESSION = "sess-keys-01"


def files_under(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A deployment whose ledger holds one entry signed by its first key."""
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SIGNGATE_LEDGER", "sqlite")
    get_settings.cache_clear()
    settings = get_settings()
    signer = ledger_signer(settings)  # a fresh deployment: the first key is minted
    SqliteLedger(settings.ledger_path, signer).append(SESSION, "decision", f"{SESSION}:d", {})
    yield settings
    get_settings.cache_clear()


def test_a_fresh_deployment_mints_its_first_key(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", ledger="sqlite")
    assert newest_receipt(settings) is None  # no ledger file yet: not an error
    signer = ledger_signer(settings)
    assert signing_key_names(settings.keys_dir) == ["signgate"]
    assert signer.key_id in KeyRing.from_dir(settings.keys_dir)


def test_a_ledger_file_without_its_table_counts_as_no_ledger(tmp_path: Path) -> None:
    """What a writer that died before setting the file up leaves: no entries to protect."""
    settings = Settings(var_dir=tmp_path / "var", ledger="sqlite")
    settings.ledger_path.parent.mkdir(parents=True)
    sqlite3.connect(settings.ledger_path).close()
    assert newest_receipt(settings) is None
    report = SqliteLedger(settings.ledger_path, None).verify(KeyRing())
    assert (report.ok, report.reason) == (False, "ledger_missing")
    signer = ledger_signer(settings)
    SqliteLedger(settings.ledger_path, signer).append(SESSION, "decision", f"{SESSION}:d", {})
    assert SqliteLedger(settings.ledger_path, None).verify(KeyRing.from_dir(settings.keys_dir)).ok


async def test_a_worker_with_its_keys_directory_lost_refuses_and_writes_no_key(
    settings: Settings,
) -> None:
    head = newest_receipt(settings)
    assert head is not None
    shutil.rmtree(settings.keys_dir)

    with pytest.raises(SigningKeyMissing, match="restore the keys directory") as refused:
        await run_worker(settings)  # refused before it connects to Temporal
    assert refused.value.reason == "signing_key_missing"
    assert head.key_id in refused.value.message and f"seq {head.seq}" in refused.value.message
    # Nothing was minted: no signing key, no KEK, no payload key to clash with the backup.
    assert files_under(settings.keys_dir) == []
    assert newest_receipt(settings) == head


async def test_restoring_the_keys_lets_the_worker_sign_on(
    settings: Settings, tmp_path: Path
) -> None:
    backup = tmp_path / "keys-backup"
    shutil.copytree(settings.keys_dir, backup)
    shutil.rmtree(settings.keys_dir)
    with pytest.raises(SigningKeyMissing):
        ActivityDeps.from_settings(settings)

    shutil.copytree(backup, settings.keys_dir)
    deps = ActivityDeps.from_settings(settings)
    try:
        deps.ledger.append(SESSION, "signing_unlocked", f"{SESSION}:u", {})
        report = deps.ledger.verify(KeyRing.from_dir(settings.keys_dir))
    finally:
        await deps.aclose()
    assert report.ok and report.entries_checked == 2


def test_another_deployments_keys_are_refused(settings: Settings, tmp_path: Path) -> None:
    shutil.rmtree(settings.keys_dir)
    Signer.load_active(settings.keys_dir)  # keys from elsewhere, restored by mistake
    with pytest.raises(SigningKeyMissing):
        ledger_signer(settings)


def test_cli_writers_refuse_a_lost_keys_directory_with_exit_2(settings: Settings) -> None:
    shutil.rmtree(settings.keys_dir)
    runner = CliRunner()
    for args in (["erase", SESSION, "--reason", "subject request"], ["audit", "checkpoint"]):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2, refused.output
        assert "signing_key_missing" in refused.output
    assert files_under(settings.keys_dir) == []


def test_after_a_rotation_erase_and_checkpoint_sign_with_the_new_key(settings: Settings) -> None:
    """They used to load the first key by name, whose private half a rotation deletes:
    minting a stranger under the retired name, then failing `key_pair_mismatch`."""
    rotated = rotate_signing_key(settings.keys_dir)
    runner = CliRunner()
    erased = runner.invoke(app, ["erase", SESSION, "--reason", "subject request"])
    assert erased.exit_code == 0, erased.output
    checkpointed = runner.invoke(app, ["audit", "checkpoint"])
    assert checkpointed.exit_code == 0, checkpointed.output

    ledger = SqliteLedger(settings.ledger_path, None)
    assert [e.key_id for e in ledger.entries()][-2:] == [rotated.key_id, rotated.key_id]
    assert ledger.verify(KeyRing.from_dir(settings.keys_dir)).ok
    assert not (settings.keys_dir / f"signgate{PRIVATE_SUFFIX}").exists()  # still retired


def test_a_retired_key_is_never_minted_again(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = Signer.load_active(keys)
    rotate_signing_key(keys)
    before = files_under(keys)
    with pytest.raises(SigningKeyRetired) as refused:
        Signer.load_or_create(keys, "signgate")
    assert refused.value.reason == "signing_key_retired"
    assert files_under(keys) == before
    assert first.key_id in KeyRing.from_dir(keys)  # its public half still verifies


def test_public_keys_without_a_private_one_need_a_deliberate_rotation(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = Signer.load_active(keys)
    (keys / f"signgate{PRIVATE_SUFFIX}").unlink()  # the private key lost
    with pytest.raises(SigningKeyMissing, match="signing-key rotate"):
        Signer.load_active(keys)
    rotated = rotate_signing_key(keys)
    assert Signer.load_active(keys).key_id == rotated.key_id != first.key_id
    assert set(KeyRing.from_dir(keys).key_ids) == {first.key_id, rotated.key_id}


async def test_the_embedded_stack_refuses_a_lost_keys_directory_before_minting(
    settings: Settings,
) -> None:
    shutil.rmtree(settings.keys_dir)
    with pytest.raises(SigningKeyMissing):
        async with embedded_stack(settings, ui=False):
            pytest.fail("the stack started")
    assert files_under(settings.keys_dir) == []


def test_with_only_the_public_key_saved_a_deliberate_rotation_goes_on(settings: Settings) -> None:
    """No backup of the keys, but the public key from an audit bundle: the earlier entries
    stay verifiable, and a rotation on purpose gives the writers a new key."""
    head = newest_receipt(settings)
    assert head is not None
    ring = KeyRing.from_dir(settings.keys_dir)
    public = ring.get(head.key_id)
    assert public is not None
    shutil.rmtree(settings.keys_dir)
    settings.keys_dir.mkdir()
    (settings.keys_dir / f"{head.key_id}.pub.pem").write_bytes(public_pem(public))

    with pytest.raises(SigningKeyMissing, match="signing-key rotate"):
        ledger_signer(settings)  # the key is known, but nothing may sign with it
    rotated = rotate_signing_key(settings.keys_dir)
    signer = ledger_signer(settings)
    assert signer.key_id == rotated.key_id != head.key_id
    ledger = SqliteLedger(settings.ledger_path, signer)
    ledger.append(SESSION, "signing_unlocked", f"{SESSION}:u", {})
    report = ledger.verify(KeyRing.from_dir(settings.keys_dir))
    assert report.ok and report.entries_checked == 2
