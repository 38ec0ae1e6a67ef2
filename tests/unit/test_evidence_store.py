"""The write-once content-addressed evidence store."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signgate.envelope import default_data_keys
from signgate.errors import BadInput
from signgate.evidence import (
    UPLOAD_BATCH_BYTES,
    UPLOAD_WRITEBACK_BYTES,
    EvidenceError,
    EvidenceHashMismatch,
    EvidenceMissing,
    EvidenceTooLarge,
    LocalEvidenceStore,
)
from signgate.models import ArtifactKind

SELFIE = ArtifactKind.selfie
MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunked(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def leftovers(store: LocalEvidenceStore) -> list[Path]:
    return list((store.root / "tmp").iterdir())


def objects(store: LocalEvidenceStore) -> list[Path]:
    return [p for p in (store.root / "objects").rglob("*") if p.is_file()]


async def test_streamed_upload_is_stored_under_its_hash(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    data = bytes(range(256)) * 40
    ref = await store.put_stream(SELFIE, chunked(data), sha(data), 1 * MiB, "image/jpeg")
    digest = sha(data)
    assert ref.sha256 == digest and ref.size_bytes == len(data)
    assert ref.object_key == f"sha256/{digest[:2]}/{digest}"
    assert ref.kind is SELFIE and ref.content_type == "image/jpeg"
    with store.open(ref.object_key) as stored:
        assert stored.read() == data
    assert store.exists(ref.object_key) and store.verify(ref)
    assert leftovers(store) == []


async def test_streaming_holds_at_most_two_batches_in_memory(tmp_path: Path) -> None:
    # Before it takes a chunk, the store has written out all but the batch it is filling
    # and the one in its writer thread: memory stays bounded whatever the body's size.
    store = LocalEvidenceStore(tmp_path)
    chunk = bytes(range(256)) * 1024  # 256 KiB
    behind: list[int] = []

    async def watched() -> AsyncIterator[bytes]:
        for i in range(24):
            files = leftovers(store)
            written = files[0].stat().st_size if files else 0
            behind.append(i * len(chunk) - written)
            yield chunk

    ref = await store.put_stream(SELFIE, watched(), sha(chunk * 24), 8 * MiB, "image/jpeg")
    assert max(behind) <= 2 * UPLOAD_BATCH_BYTES
    assert behind[-1] > 0, "batches are written in a thread, not chunk by chunk"
    with store.open(ref.object_key) as stored:
        assert stored.read() == chunk * 24


async def test_batches_are_written_in_order_whatever_the_chunk_sizes(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path / "evidence", default_data_keys(tmp_path / "keys"))
    data = hashlib.shake_256(b"order").digest(3 * MiB + 12345)
    sizes = [1, 7, 65536, 1 * MiB + 3, 999, 2 * MiB]

    async def ragged() -> AsyncIterator[bytes]:
        start, i = 0, 0
        while start < len(data):
            size = sizes[i % len(sizes)]
            yield data[start : start + size]
            start, i = start + size, i + 1

    ref = await store.put_stream(SELFIE, ragged(), sha(data), 8 * MiB, "image/jpeg", "s1")
    with store.open(ref.object_key) as stored:
        assert stored.read() == data
    assert leftovers(store) == []


async def test_an_upload_past_the_writeback_step_reads_back_whole(tmp_path: Path) -> None:
    # Every UPLOAD_WRITEBACK_BYTES the temp file's pages are written out and dropped from
    # the cache; what the object holds must not change for it (encrypted and plain).
    store = LocalEvidenceStore(tmp_path / "evidence", default_data_keys(tmp_path / "keys"))
    data = hashlib.shake_256(b"large").digest(2 * UPLOAD_WRITEBACK_BYTES + 5)
    for session in ("s1", None):
        ref = await store.put_stream(
            SELFIE, chunked(data, 300_000), sha(data), len(data), "image/jpeg", session
        )
        assert ref.size_bytes == len(data) and store.verify(ref)
    assert leftovers(store) == []


async def test_a_refusal_mid_body_waits_for_the_writer_thread(tmp_path: Path) -> None:
    # The stream fails while a batch is in the writer thread: the error reaches the
    # caller, the thread's batch finishes first, and the temp file goes.
    store = LocalEvidenceStore(tmp_path)

    async def refused_after(n_bytes: int) -> AsyncIterator[bytes]:
        for _ in range(n_bytes // 65536):
            yield b"z" * 65536
        raise ConnectionResetError("client went away")

    for n_bytes in (UPLOAD_BATCH_BYTES + 65536, 3 * UPLOAD_BATCH_BYTES):
        with pytest.raises(ConnectionResetError):
            await store.put_stream(SELFIE, refused_after(n_bytes), sha(b""), 8 * MiB, "x")
    with pytest.raises(EvidenceTooLarge):
        await store.put_stream(SELFIE, chunked(b"q" * 3 * MiB, 65536), sha(b""), MiB, "x")
    assert objects(store) == [] and leftovers(store) == []


async def test_hash_mismatch_is_422_with_reason_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    with pytest.raises(EvidenceHashMismatch) as err:
        await store.put_stream(SELFIE, chunked(b"actual"), sha(b"claimed"), MiB, "image/jpeg")
    assert (err.value.reason, err.value.http_status) == ("evidence_hash_mismatch", 422)
    assert isinstance(err.value, EvidenceError) and isinstance(err.value, BadInput)
    assert objects(store) == [] and leftovers(store) == []


async def test_too_large_is_413_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    data = b"y" * 5000
    with pytest.raises(EvidenceTooLarge) as err:
        await store.put_stream(SELFIE, chunked(data), sha(data), 4999, "image/jpeg")
    assert (err.value.reason, err.value.http_status) == ("evidence_too_large", 413)
    assert objects(store) == [] and leftovers(store) == []


async def test_exactly_max_bytes_is_accepted(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    data = b"y" * 5000
    ref = await store.put_stream(SELFIE, chunked(data), sha(data), 5000, "image/jpeg")
    assert ref.size_bytes == 5000


async def test_a_failing_upload_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream(SELFIE, broken(), sha(b"part"), MiB, "image/jpeg")
    assert objects(store) == [] and leftovers(store) == []


@pytest.mark.parametrize("bad", ["", "abc", "z" * 64, "a" * 63, "../" + "a" * 61])
async def test_malformed_expected_hash_is_bad_input(tmp_path: Path, bad: str) -> None:
    store = LocalEvidenceStore(tmp_path)
    with pytest.raises(BadInput) as err:
        await store.put_stream(SELFIE, chunked(b"d"), bad, MiB, "image/jpeg")
    assert err.value.reason == "evidence_hash_malformed"
    assert leftovers(store) == []


async def test_upper_case_expected_hash_is_accepted(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    ref = await store.put_stream(SELFIE, chunked(b"d"), sha(b"d").upper(), MiB, "image/jpeg")
    assert ref.sha256 == sha(b"d")


def test_stored_object_is_read_only(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    ref = store.put_bytes(SELFIE, b"face", content_type="image/jpeg")
    [path] = objects(store)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert ref.object_key.endswith(path.name)


def test_existing_object_is_never_rewritten(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    first = store.put_bytes(SELFIE, b"face", content_type="image/jpeg")
    [path] = objects(store)
    inode, mtime = path.stat().st_ino, path.stat().st_mtime_ns
    second = store.put_bytes(ArtifactKind.id_front, b"face", content_type="image/png")
    assert second.object_key == first.object_key
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)
    assert objects(store) == [path] and leftovers(store) == []


def test_put_bytes_checks_hash_and_size_when_given(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    with pytest.raises(EvidenceHashMismatch):
        store.put_bytes(SELFIE, b"a", "image/jpeg", expected_sha256=sha(b"b"))
    with pytest.raises(EvidenceTooLarge):
        store.put_bytes(SELFIE, b"abc", "image/jpeg", max_bytes=2)
    assert objects(store) == [] and leftovers(store) == []


async def test_put_bytes_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    # Test helpers call it from async tests; it must not try to start its own loop.
    ref = LocalEvidenceStore(tmp_path).put_bytes(SELFIE, b"z", content_type="image/jpeg")
    assert ref.size_bytes == 1


def test_verify_detects_changed_bytes_and_wrong_size(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    ref = store.put_bytes(SELFIE, b"original", content_type="image/jpeg")
    assert store.verify(ref)
    assert not store.verify(ref.model_copy(update={"size_bytes": 7}))
    [path] = objects(store)
    path.chmod(0o644)
    path.write_bytes(b"0riginal")
    assert not store.verify(ref)


def test_missing_object_is_evidence_missing(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    ref = store.put_bytes(SELFIE, b"gone", content_type="image/jpeg")
    [path] = objects(store)
    path.unlink()
    assert not store.exists(ref.object_key)
    with pytest.raises(EvidenceMissing) as err:
        store.verify(ref)
    assert err.value.reason == "evidence_missing"
    with pytest.raises(EvidenceMissing):
        store.open(ref.object_key)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "sha256/../../../etc/passwd",
        "/etc/passwd",
        "sha256/aa/" + "b" * 64,  # shard does not match the hash
        "sha256/" + "a" * 64,
        "sha256/aa/" + "a" * 64 + "/..",
        "sha256/AA/" + "A" * 64,
    ],
)
def test_object_keys_that_leave_the_store_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalEvidenceStore(tmp_path / "store")
    for call in (store.open, store.exists):
        with pytest.raises(BadInput) as err:
            call(key)
        assert err.value.reason == "evidence_key_invalid"


def test_first_claim_wins_and_a_repeat_claim_returns_the_claimant(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    digest = sha(b"capture")
    assert store.claim(digest, "session-a") == "session-a"
    assert store.claim(digest, "session-a") == "session-a"
    assert store.claim(digest, "session-b") == "session-a"
    assert store.claim(sha(b"other"), "session-b") == "session-b"


def test_concurrent_claims_have_exactly_one_winner(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    digest = sha(b"contested")
    barrier = threading.Barrier(12)
    answers: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        answers.append(store.claim(digest, f"session-{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 12 and len(set(answers)) == 1
    assert answers[0] in {f"session-{i}" for i in range(12)}


@pytest.mark.parametrize(("digest", "session"), [("nothex", "s"), (sha(b"x"), "")])
def test_claim_refuses_bad_input(tmp_path: Path, digest: str, session: str) -> None:
    with pytest.raises(BadInput):
        LocalEvidenceStore(tmp_path).claim(digest, session)
