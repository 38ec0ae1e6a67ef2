"""Encryption at rest of session evidence (local backend) and crypto-shredding."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signgate.envelope import (
    FRAME_PLAINTEXT_BYTES,
    DataKeys,
    EvidenceErased,
    EvidenceUndecryptable,
    KeyEncryptionKeyMissing,
    LocalKeyEncryptionKey,
    decrypt_frames,
    default_data_keys,
    encrypt_bytes,
)
from signgate.errors import BadInput
from signgate.evidence import (
    EvidenceHashMismatch,
    EvidenceKeyInvalid,
    LocalEvidenceStore,
    object_key_for,
)
from signgate.models import ArtifactKind, CaptureMetadata
from signgate.sealing import seal_round
from signgate.signer import Signer

SELFIE = ArtifactKind.selfie


@pytest.fixture
def keys(tmp_path: Path) -> DataKeys:
    return default_data_keys(tmp_path / "keys")


@pytest.fixture
def store(tmp_path: Path, keys: DataKeys) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "evidence", keys)


def stored_path(store: LocalEvidenceStore, session: str, sha256: str) -> Path:
    return store.root / "objects" / "sessions" / session / sha256


def test_session_object_is_ciphertext_on_disk_and_plaintext_when_read(
    store: LocalEvidenceStore,
) -> None:
    data = b"face" * 10_000
    ref = store.put_bytes(SELFIE, data, "image/jpeg", session_id="sess-a")
    assert ref.object_key == object_key_for(ref.sha256, "sess-a")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()  # the plaintext's hash
    on_disk = stored_path(store, "sess-a", ref.sha256).read_bytes()
    assert on_disk.startswith(b"SGE1") and b"face" * 4 not in on_disk
    with store.open(ref.object_key) as plain:
        assert plain.read() == data
    assert store.verify(ref)


async def test_streamed_session_upload_with_wrong_hash_leaves_nothing(
    store: LocalEvidenceStore,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"not what was promised"

    with pytest.raises(EvidenceHashMismatch):
        await store.put_stream(SELFIE, chunks(), "0" * 64, 1000, "image/jpeg", session_id="sess-a")
    assert list((store.root / "objects").rglob("*")) == [store.root / "objects" / "sha256"]
    assert list((store.root / "tmp").iterdir()) == []


def test_a_flipped_ciphertext_byte_is_caught(store: LocalEvidenceStore) -> None:
    ref = store.put_bytes(SELFIE, b"genuine selfie", "image/jpeg", session_id="sess-a")
    path = stored_path(store, "sess-a", ref.sha256)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(blob))
    with pytest.raises(EvidenceUndecryptable):
        store.verify(ref)


def encrypted(key: bytes, object_key: str, data: bytes) -> bytes:
    sink = io.BytesIO()
    encrypt_bytes(key, object_key, [data], sink)
    return sink.getvalue()


def test_truncated_multi_frame_object_is_refused() -> None:
    key = bytes(32)
    data = b"v" * (2 * FRAME_PLAINTEXT_BYTES + 10)
    blob = encrypted(key, "k", data)
    assert b"".join(decrypt_frames(key, "k", io.BytesIO(blob))) == data
    last_frame = 4 + 10 + 16  # length prefix, 10 bytes, tag
    with pytest.raises(EvidenceUndecryptable, match="truncated"):
        b"".join(decrypt_frames(key, "k", io.BytesIO(blob[:-last_frame])))


def test_ciphertext_moved_to_another_object_key_does_not_decrypt() -> None:
    key = bytes(32)
    blob = encrypted(key, "sessions/a/sha256/" + "1" * 64, b"x")
    with pytest.raises(EvidenceUndecryptable):
        b"".join(decrypt_frames(key, "sessions/a/sha256/" + "2" * 64, io.BytesIO(blob)))


def test_erasure_makes_only_that_sessions_media_unreadable(
    store: LocalEvidenceStore, keys: DataKeys
) -> None:
    erased = store.put_bytes(SELFIE, b"erase me", "image/jpeg", session_id="sess-gone")
    kept = store.put_bytes(SELFIE, b"keep me", "image/jpeg", session_id="sess-kept")
    assert keys.erase("sess-gone", "subject request") is True
    with pytest.raises(EvidenceErased) as refused:
        store.open(erased.object_key)
    assert refused.value.reason == "evidence_erased"
    with pytest.raises(EvidenceErased):
        store.verify(erased)
    with pytest.raises(EvidenceErased):  # no fresh key is ever minted for it
        keys.key_for("sess-gone")
    assert store.verify(kept)
    assert keys.erase("sess-gone", "again") is False  # idempotent


def test_data_keys_are_stored_only_wrapped(keys: DataKeys, tmp_path: Path) -> None:
    key = keys.key_for("sess-a")
    wrapped = (tmp_path / "keys" / "data" / "sess-a.json").read_bytes()
    assert key.hex() not in wrapped.decode()
    assert keys.key_for("sess-a") == key  # stable


def test_a_different_kek_cannot_unwrap(tmp_path: Path, keys: DataKeys) -> None:
    keys.key_for("sess-a")
    other = DataKeys(tmp_path / "keys" / "data", LocalKeyEncryptionKey(tmp_path / "other.key"))
    with pytest.raises(EvidenceUndecryptable, match=r"wrapped by 'kek-[0-9a-f]{16}'"):
        other.key_for("sess-a")


def test_a_lost_kek_is_not_silently_replaced(tmp_path: Path, keys: DataKeys) -> None:
    """A fresh KEK beside data keys wrapped by a lost one would start every process as
    usual and leave all that evidence unreadable: refuse to start instead."""
    key = keys.key_for("sess-a")
    kek = tmp_path / "keys" / "kek.key"
    backup = kek.read_bytes()
    kek.unlink()
    with pytest.raises(KeyEncryptionKeyMissing, match="restore it from a backup") as refused:
        default_data_keys(tmp_path / "keys")
    assert refused.value.reason == "kek_missing"
    assert not kek.exists()  # nothing minted
    kek.write_bytes(backup)  # restored: everything reads again
    assert default_data_keys(tmp_path / "keys").key_for("sess-a") == key


def test_a_kek_is_minted_when_no_wrapped_key_is_left(tmp_path: Path, keys: DataKeys) -> None:
    """Erased sessions keep only a tombstone, which no KEK can unlock anyway."""
    keys.key_for("sess-a")
    assert keys.erase("sess-a", "request")
    (tmp_path / "keys" / "kek.key").unlink()
    fresh = default_data_keys(tmp_path / "keys")
    assert len(fresh.key_for("sess-b")) == 32
    with pytest.raises(EvidenceErased):
        fresh.key_for("sess-a")


@pytest.mark.parametrize("session", ["../x", "a/b", "", "x" * 65])
def test_session_ids_that_could_leave_the_folder_are_refused(keys: DataKeys, session: str) -> None:
    with pytest.raises(BadInput):
        keys.key_for(session)


def test_a_round_naming_another_sessions_object_is_not_sealed(
    store: LocalEvidenceStore, tmp_path: Path
) -> None:
    ref = store.put_bytes(SELFIE, b"someone else", "image/jpeg", session_id="sess-other")
    signer = Signer.load_or_create(tmp_path / "signer")
    capture = CaptureMetadata(challenge_nonce="n")
    with pytest.raises(EvidenceKeyInvalid):
        seal_round(store, signer, "sess-mine", 1, [ref], capture, "n")


@pytest.mark.parametrize(
    "sizes",
    [
        [700_000, 700_000, 700_000],  # frames fill across writes
        [FRAME_PLAINTEXT_BYTES * 2 + 1],  # one write spanning several frames
        [FRAME_PLAINTEXT_BYTES, 1, FRAME_PLAINTEXT_BYTES - 1, 5],  # on and around the edges
    ],
)
def test_any_chunking_gives_whole_frames_that_decrypt_to_the_stream(sizes: list[int]) -> None:
    key = bytes(range(32))
    data = hashlib.sha256(str(sizes).encode()).digest() * (sum(sizes) // 32 + 1)
    data = data[: sum(sizes)]
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    sink = io.BytesIO()
    encrypt_bytes(key, "k", chunks, sink)
    assert b"".join(decrypt_frames(key, "k", io.BytesIO(sink.getvalue()))) == data
    frames = -(-len(data) // FRAME_PLAINTEXT_BYTES)  # ceil: only the last frame is short
    assert len(sink.getvalue()) == 12 + frames * (4 + 16) + len(data)
