"""Crypto-shredding and legal holds: the media go, the proof of what was decided stays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from signgate.envelope import EvidenceErased
from signgate.erasure import Erasure, SessionNotOnHold, SessionOnHold
from signgate.evidence import EvidenceStore
from signgate.evidence_stores import open_evidence_store
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, ArtifactRef, CaptureMetadata
from signgate.sealing import SealRecord, seal_round, verify_seal
from signgate.settings import Settings, get_settings
from signgate.signer import KeyRing, Signer

SESSION = "sess-erase-01"


@dataclass
class World:
    settings: Settings
    store: EvidenceStore
    ledger: SqliteLedger
    erasure: Erasure
    refs: list[ArtifactRef]
    seal: SealRecord


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    settings = get_settings()
    store = open_evidence_store(settings)
    signer = Signer.load_or_create(settings.keys_dir)
    ledger = SqliteLedger(settings.ledger_path, signer)
    refs = [
        store.put_bytes(ArtifactKind.selfie, b"selfie", "image/jpeg", session_id=SESSION),
        store.put_bytes(ArtifactKind.id_front, b"id card", "image/jpeg", session_id=SESSION),
    ]
    seal = seal_round(store, signer, SESSION, 1, refs, CaptureMetadata(challenge_nonce="n"), "n")
    ledger.append(SESSION, "evidence_sealed", f"{SESSION}:evidence_sealed:1", seal.model_dump())
    assert store.data_keys is not None
    yield World(settings, store, ledger, Erasure(ledger, store.data_keys), refs, seal)
    get_settings.cache_clear()


def test_erased_media_cannot_be_read_but_ledger_and_seal_still_verify(world: World) -> None:
    receipt = world.erasure.erase(SESSION, by="ops-carol", reason="subject request")
    assert receipt.entry_type == "evidence_erased"
    for ref in world.refs:
        with pytest.raises(EvidenceErased) as refused:
            world.store.open(ref.object_key)
        assert refused.value.reason == "evidence_erased"
    keyring = KeyRing.from_dir(world.settings.keys_dir)
    assert world.ledger.verify(keyring).ok
    assert verify_seal(world.seal, keyring)
    erased = [e for e in world.ledger.entries(SESSION) if e.entry_type == "evidence_erased"]
    assert erased[0].body["reason"] == "subject request"
    assert erased[0].body["by"] == "ops-carol"


def test_erasing_twice_returns_the_first_receipt(world: World) -> None:
    first = world.erasure.erase(SESSION, by="a", reason="subject request")
    assert world.erasure.erase(SESSION, by="a", reason="subject request") == first
    assert len(world.ledger.entries(SESSION)) == 2


def test_held_session_is_not_erased_until_released(world: World) -> None:
    world.erasure.hold(SESSION, by="legal", reason="litigation 42")
    assert world.erasure.is_held(SESSION)
    with pytest.raises(SessionOnHold) as refused:
        world.erasure.erase(SESSION, by="a", reason="subject request")
    assert refused.value.reason == "session_on_legal_hold"
    assert world.store.verify(world.refs[0])  # nothing was destroyed
    world.erasure.release(SESSION, by="legal", reason="case closed")
    assert not world.erasure.is_held(SESSION)
    world.erasure.erase(SESSION, by="a", reason="subject request")
    types = [e.entry_type for e in world.ledger.entries(SESSION)]
    assert types == ["evidence_sealed", "legal_hold", "legal_hold_released", "evidence_erased"]


def test_hold_is_idempotent_and_release_needs_a_hold(world: World) -> None:
    first = world.erasure.hold(SESSION, by="legal", reason="x")
    assert world.erasure.hold(SESSION, by="legal", reason="x") == first
    world.erasure.release(SESSION, by="legal", reason="y")
    with pytest.raises(SessionNotOnHold):
        world.erasure.release(SESSION, by="legal", reason="y")
    second = world.erasure.hold(SESSION, by="legal", reason="again")
    assert second.seq > first.seq and world.erasure.is_held(SESSION)


def test_cli_erase_hold_release_and_audit_verify(world: World) -> None:
    runner = CliRunner()
    held = runner.invoke(app, ["hold", SESSION, "--reason", "litigation", "--by", "legal"])
    assert held.exit_code == 0, held.output
    refused = runner.invoke(app, ["erase", SESSION, "--reason", "subject request"])
    assert refused.exit_code == 2
    assert "session_on_legal_hold" in refused.output
    assert world.store.verify(world.refs[0])
    released = runner.invoke(app, ["release", SESSION])
    assert released.exit_code == 0, released.output
    erased = runner.invoke(app, ["erase", SESSION, "--reason", "subject request"])
    assert erased.exit_code == 0, erased.output
    with pytest.raises(EvidenceErased):
        world.store.open(world.refs[0].object_key)
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
