"""Sealing a capture round: re-verified bytes, Merkle root, replay/challenge flags, stamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from signgate.evidence import EvidenceHashMismatch, EvidenceMissing, LocalEvidenceStore
from signgate.hashing import merkle_root
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, ArtifactRef, CaptureMetadata, SealedEvidence
from signgate.sealing import SealRecord, seal_round, verify_seal
from signgate.signer import KeyRing, Signer

NONCE = "challenge-123"


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "evidence")


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def keyring(signer: Signer) -> KeyRing:
    return KeyRing.from_pems([signer.public_key_pem()])


def capture_round(store: LocalEvidenceStore, tag: str) -> list[ArtifactRef]:
    return [
        store.put_bytes(ArtifactKind.selfie, f"selfie {tag}".encode(), "image/jpeg"),
        store.put_bytes(ArtifactKind.id_front, f"id {tag}".encode(), "image/jpeg"),
        store.put_bytes(ArtifactKind.liveness_video, f"video {tag}".encode(), "video/mp4"),
    ]


def seal(
    store: LocalEvidenceStore,
    signer: Signer,
    artifacts: list[ArtifactRef],
    session_id: str = "sess-a",
    nonce: str = NONCE,
) -> SealRecord:
    capture = CaptureMetadata(challenge_nonce=nonce)
    return seal_round(store, signer, session_id, 1, artifacts, capture, NONCE)


def test_root_is_over_artifacts_sorted_by_kind_then_hash(
    store: LocalEvidenceStore, signer: Signer
) -> None:
    artifacts = capture_round(store, "a")
    record = seal(store, signer, list(reversed(artifacts)))
    expected_order = sorted(artifacts, key=lambda a: (a.kind.value, a.sha256))
    assert record.artifacts == expected_order
    assert record.merkle_root == merkle_root([a.sha256 for a in expected_order])
    assert (record.session_id, record.round, record.flags) == ("sess-a", 1, [])


def test_sealing_is_deterministic_so_retries_append_the_same_ledger_body(
    store: LocalEvidenceStore, signer: Signer, tmp_path: Path
) -> None:
    artifacts = capture_round(store, "a")
    first = seal(store, signer, artifacts)
    retry = seal(store, signer, list(reversed(artifacts)))
    assert retry == first
    ledger = SqliteLedger(tmp_path / "ledger.db", signer)
    key = "sess-a:evidence_sealed:1"
    receipt = ledger.append("sess-a", "evidence_sealed", key, first.model_dump(mode="json"))
    assert ledger.append("sess-a", "evidence_sealed", key, retry.model_dump(mode="json")) == (
        receipt
    )


def test_capture_already_claimed_by_another_session_is_flagged_replayed(
    store: LocalEvidenceStore, signer: Signer
) -> None:
    artifacts = capture_round(store, "a")
    assert seal(store, signer, artifacts, session_id="sess-a").flags == []
    replay = seal(store, signer, [artifacts[1]], session_id="sess-b")
    assert replay.flags == ["replayed_capture"]
    # The session that sealed it first is not flagged when its own round is sealed again.
    assert seal(store, signer, artifacts, session_id="sess-a").flags == []


def test_wrong_challenge_nonce_is_flagged(store: LocalEvidenceStore, signer: Signer) -> None:
    record = seal(store, signer, capture_round(store, "a"), nonce="challenge-124")
    assert record.flags == ["challenge_mismatch"]


def test_both_flags_together_are_sorted(store: LocalEvidenceStore, signer: Signer) -> None:
    artifacts = capture_round(store, "a")
    seal(store, signer, artifacts, session_id="sess-a")
    record = seal(store, signer, artifacts, session_id="sess-b", nonce="other")
    assert record.flags == ["challenge_mismatch", "replayed_capture"]


def test_stored_bytes_changed_after_upload_is_hash_mismatch(
    store: LocalEvidenceStore, signer: Signer
) -> None:
    artifacts = capture_round(store, "a")
    path = store.root / "objects" / artifacts[0].object_key
    path.chmod(0o644)
    path.write_bytes(b"selfie b")  # same size, other bytes
    with pytest.raises(EvidenceHashMismatch) as err:
        seal(store, signer, artifacts)
    assert err.value.reason == "evidence_hash_mismatch"


def test_client_naming_an_object_never_stored_is_evidence_missing(
    store: LocalEvidenceStore, signer: Signer
) -> None:
    artifacts = capture_round(store, "a")
    ghost = "9" * 64
    lie = artifacts[0].model_copy(update={"sha256": ghost, "object_key": f"sha256/99/{ghost}"})
    with pytest.raises(EvidenceMissing):
        seal(store, signer, [artifacts[1], lie])


def test_failed_seal_claims_nothing(store: LocalEvidenceStore, signer: Signer) -> None:
    artifacts = capture_round(store, "a")
    ghost = "9" * 64
    lie = artifacts[0].model_copy(update={"sha256": ghost, "object_key": f"sha256/99/{ghost}"})
    with pytest.raises(EvidenceMissing):
        seal(store, signer, [artifacts[1], lie], session_id="attacker")
    assert seal(store, signer, artifacts, session_id="sess-a").flags == []


def test_stamp_verifies(store: LocalEvidenceStore, signer: Signer, keyring: KeyRing) -> None:
    record = seal(store, signer, capture_round(store, "a"))
    assert record.stamp_key_id == signer.key_id
    assert verify_seal(record, keyring)


def test_stamp_also_verifies_in_its_sealed_evidence_form(
    store: LocalEvidenceStore, signer: Signer, keyring: KeyRing, tmp_path: Path
) -> None:
    record = seal(store, signer, capture_round(store, "a"))
    ledger = SqliteLedger(tmp_path / "ledger.db", signer)
    receipt = ledger.append("sess-a", "evidence_sealed", "k", record.model_dump(mode="json"))
    sealed = SealedEvidence(**record.model_dump(), ledger=receipt)
    assert verify_seal(sealed, keyring)


@pytest.mark.parametrize(
    "change",
    [
        {"session_id": "sess-b"},
        {"round": 2},
        {"flags": []},
        {"merkle_root": "0" * 64},
        {"stamp_key_id": "0" * 16},
    ],
)
def test_stamp_fails_after_any_field_changes(
    store: LocalEvidenceStore, signer: Signer, keyring: KeyRing, change: dict[str, object]
) -> None:
    record = seal(store, signer, capture_round(store, "a"), nonce="wrong")
    assert record.flags == ["challenge_mismatch"]
    assert not verify_seal(record.model_copy(update=change), keyring)


def test_stamp_fails_when_an_artifact_is_dropped_or_swapped(
    store: LocalEvidenceStore, signer: Signer, keyring: KeyRing
) -> None:
    record = seal(store, signer, capture_round(store, "a"))
    other = capture_round(store, "b")[0]
    dropped = record.artifacts[1:]
    assert not verify_seal(
        record.model_copy(
            update={"artifacts": dropped, "merkle_root": merkle_root([a.sha256 for a in dropped])}
        ),
        keyring,
    )
    swapped = [other, *record.artifacts[1:]]
    assert not verify_seal(record.model_copy(update={"artifacts": swapped}), keyring)


def test_stamp_from_an_unknown_key_does_not_verify(
    store: LocalEvidenceStore, signer: Signer, tmp_path: Path
) -> None:
    record = seal(store, signer, capture_round(store, "a"))
    stranger = Signer.load_or_create(tmp_path / "stranger")
    assert not verify_seal(record, KeyRing.from_pems([stranger.public_key_pem()]))
