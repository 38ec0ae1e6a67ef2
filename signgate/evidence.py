"""Local, write-once, content-addressed evidence store (the embedded default).

An object's name is its SHA-256, so a stored object can be re-verified at any time and two
uploads of the same bytes are one object. Objects are created by hard-linking a fully
written, fsynced temp file into place: a reader never sees a partial object, and an
existing object is never overwritten (same name means same bytes). Objects are then
read-only (0o444). Raw media stays here; Temporal and the ledger see only `ArtifactRef`s.

Objects uploaded for a session (what the gateway always does) are keyed
`sessions/<session>/sha256/<hex>` and encrypted under that session's data key (see
`signgate.envelope`); the name still carries the SHA-256 of the plaintext. Objects put
without a session (test fixtures) keep the bare `sha256/<hex[:2]>/<hex>` key, unencrypted.

Layout under `root`:
    tmp/                                  uploads in progress (removed on any failure)
    objects/sha256/<hex[:2]>/<hex>        unscoped objects (plaintext)
    objects/sessions/<session>/<hex>      a session's objects (SGE1 ciphertext)
    claims/<hex[:2]>/<hex>                which session first submitted this content
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from signgate.envelope import DataKeys, FrameEncryptor, decrypt_frames, valid_session_id
from signgate.errors import BadInput, Fault, SigngateError
from signgate.hashing import is_sha256_hex, sha256_hex
from signgate.models import ArtifactKind, ArtifactRef
from signgate.signer import fsync_dir, write_once

READ_CHUNK_BYTES = 1024 * 1024
# An upload is written in batches of about this size, one batch in a thread while the
# event loop receives the next: at most two batches of a body are ever held in memory.
UPLOAD_BATCH_BYTES = 1024 * 1024
# Every this many bytes an upload asks the kernel to write its temp file out and drop the
# pages already written (`POSIX_FADV_DONTNEED`): the page cache an upload holds stays
# small whatever its size, and the final fsync has little left to do. Without it, a 1 GB
# upload took 3x as long here, nearly all of it kernel time spent finding fresh pages.
UPLOAD_WRITEBACK_BYTES = 16 * 1024 * 1024
SPOOL_BYTES = 16 * 1024 * 1024
_OBJECT_KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{64})")
_SESSION_OBJECT_KEY = re.compile(r"sessions/([A-Za-z0-9_-]{1,64})/sha256/([0-9a-f]{64})")


class EvidenceError(SigngateError):
    reason = "evidence_error"
    http_status = 422


class EvidenceTooLarge(EvidenceError, BadInput):
    reason = "evidence_too_large"
    http_status = 413


class EvidenceHashMismatch(EvidenceError, BadInput):
    """The bytes are not the bytes the client hashed (upload), or no longer (re-verify)."""

    reason = "evidence_hash_mismatch"
    http_status = 422


class EvidenceMissing(EvidenceError, BadInput):
    """No object under that key: never uploaded, or named by a client that lies."""

    reason = "evidence_missing"
    http_status = 404


class EvidenceKeyInvalid(EvidenceError, BadInput):
    """An object key or hash that is not ours: malformed, or trying to leave the store."""

    reason = "evidence_key_invalid"
    http_status = 422


def object_key_for(sha256: str, session_id: str | None = None) -> str:
    """The key of an object: scoped to (and encrypted for) a session, or bare (plaintext)."""
    if session_id is None:
        return f"sha256/{sha256[:2]}/{sha256}"
    return f"sessions/{valid_session_id(session_id)}/sha256/{sha256}"


def parse_object_key(object_key: str) -> tuple[str | None, str]:
    """(session or None, sha256) of a valid key; `EvidenceKeyInvalid` for anything else."""
    if isinstance(object_key, str):
        scoped = _SESSION_OBJECT_KEY.fullmatch(object_key)
        if scoped is not None:
            return scoped.group(1), scoped.group(2)
        bare = _OBJECT_KEY.fullmatch(object_key)
        if bare is not None and bare.group(2)[:2] == bare.group(1):
            return None, bare.group(2)
    raise EvidenceKeyInvalid(f"not an evidence object key: {object_key!r}")


class EvidenceStore(Protocol):
    """What every evidence backend offers (local files, S3). Chosen by `open_evidence_store`."""

    async def put_stream(
        self,
        kind: ArtifactKind,
        chunks: AsyncIterable[bytes],
        expected_sha256: str,
        max_bytes: int,
        content_type: str,
        session_id: str | None = None,
    ) -> ArtifactRef: ...

    def put_bytes(
        self,
        kind: ArtifactKind,
        data: bytes,
        content_type: str,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
        session_id: str | None = None,
    ) -> ArtifactRef: ...

    def open(self, object_key: str) -> BinaryIO: ...

    def exists(self, object_key: str) -> bool: ...

    def verify(self, ref: ArtifactRef) -> bool: ...

    def claim(self, sha256: str, session_id: str) -> str: ...

    @property
    def data_keys(self) -> DataKeys | None: ...


def verify_stream(stream: BinaryIO, ref: ArtifactRef) -> bool:
    """Re-hash a readable (plaintext) stream and compare with the ref's hash and size."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: stream.read(READ_CHUNK_BYTES), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest() == ref.sha256 and size == ref.size_bytes


def decrypt_to_spool(data_keys: DataKeys, object_key: str, source: BinaryIO) -> BinaryIO:
    """The plaintext of a session object as a rewound file (memory, then disk past 16 MiB).

    Raises `EvidenceErased` if the session's key was destroyed.
    """
    session_id, _ = parse_object_key(object_key)
    if session_id is None:
        raise EvidenceKeyInvalid(f"{object_key} is not a session object")
    key = data_keys.key_for(session_id)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        for chunk in decrypt_frames(key, object_key, source):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return cast(BinaryIO, spool)


class UploadingStore:
    """`put_stream` and `put_bytes` for every backend: the backend supplies the upload
    (`_new_upload`), which hashes, counts and stores as it is written."""

    def _new_upload(
        self, kind: ArtifactKind, expected: str, max_bytes: int, session_id: str | None
    ) -> HashedUpload:
        raise NotImplementedError

    @contextmanager
    def _upload(
        self, kind: ArtifactKind, expected: str, max_bytes: int, session_id: str | None
    ) -> Iterator[HashedUpload]:
        """An upload whose temp file goes when the block ends, committed or refused."""
        upload = self._new_upload(kind, expected, max_bytes, session_id)
        try:
            yield upload
        finally:
            upload.discard()

    async def put_stream(
        self,
        kind: ArtifactKind,
        chunks: AsyncIterable[bytes],
        expected_sha256: str,
        max_bytes: int,
        content_type: str,
        session_id: str | None = None,
    ) -> ArtifactRef:
        """Store an upload, hashing while streaming; refuse it unless it hashes as promised.

        The commit, which fsyncs or PUTs and can block for a while, runs in a thread.
        """
        with self._upload(kind, expected_sha256, max_bytes, session_id) as upload:
            await write_batched(upload, chunks)
            await asyncio.to_thread(upload.commit)
        return upload.ref(content_type)

    def put_bytes(
        self,
        kind: ArtifactKind,
        data: bytes,
        content_type: str,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
        session_id: str | None = None,
    ) -> ArtifactRef:
        """Synchronous convenience for small in-memory artifacts (tests, demo, sandbox).

        Without `expected_sha256` the bytes are taken as they are (their own hash is the
        expected one); without `max_bytes` there is no limit.
        """
        expected = expected_sha256 if expected_sha256 is not None else sha256_hex(data)
        limit = max_bytes if max_bytes is not None else len(data)
        with self._upload(kind, expected, limit, session_id) as upload:
            upload.write(data)
            upload.commit()
        return upload.ref(content_type)


class LocalEvidenceStore(UploadingStore):
    """Write-once content-addressed files under `root`. Safe across threads and processes:
    every mutation is a create-if-absent link, and nothing is ever modified in place."""

    def __init__(self, root: Path, data_keys: DataKeys | None = None) -> None:
        self._root = root
        self._data_keys = data_keys
        self._tmp = root / "tmp"
        self._objects = root / "objects"
        self._claims = root / "claims"
        for directory in (self._tmp, self._objects / "sha256", self._claims):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def data_keys(self) -> DataKeys | None:
        return self._data_keys

    # ------------------------------------------------------------------ writing

    def _new_upload(
        self, kind: ArtifactKind, expected: str, max_bytes: int, session_id: str | None
    ) -> HashedUpload:
        return _Upload(self, kind, expected, max_bytes, session_id)

    def _place(self, tmp: Path, object_key: str) -> None:
        """Link the finished temp file to its object path; an existing object is kept."""
        final = self._object_path(object_key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)  # before the link: the object is never visible as writable
        try:
            os.link(tmp, final)
        except FileExistsError:
            return  # same name, same bytes by construction; never overwrite
        fsync_dir(final.parent)

    # ------------------------------------------------------------------ reading

    def open(self, object_key: str) -> BinaryIO:
        """The plaintext; session objects are decrypted (`EvidenceErased` once shredded)."""
        try:
            stored = self._object_path(object_key).open("rb")
        except FileNotFoundError as err:
            raise EvidenceMissing(f"no evidence object {object_key}") from err
        if parse_object_key(object_key)[0] is None:
            return stored
        with stored:
            return decrypt_to_spool(self._require_keys(), object_key, stored)

    def _require_keys(self) -> DataKeys:
        if self._data_keys is None:
            raise Fault("this evidence store has no data keys", reason="evidence_keys_missing")
        return self._data_keys

    def exists(self, object_key: str) -> bool:
        return self._object_path(object_key).is_file()

    def verify(self, ref: ArtifactRef) -> bool:
        """Re-hash the stored bytes (streaming) and compare with the ref's hash and size.

        Raises `EvidenceMissing` if the object is gone; False means it is there but changed.
        """
        with self.open(ref.object_key) as stored:
            return verify_stream(stored, ref)

    # ------------------------------------------------------------------ claims

    def claim(self, sha256: str, session_id: str) -> str:
        """The session that first claimed this content hash (itself, if it was first).

        A capture submitted by two sessions is a replay: the second session gets the
        first one's id back. The claim file is created atomically with its content, so
        exactly one session ever wins, across threads and processes.
        """
        digest = valid_claim(sha256, session_id)
        path = self._claims / digest[:2] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_once(path, session_id.encode("utf-8"), mode=0o444)
        return path.read_text(encoding="utf-8")

    # ------------------------------------------------------------------ plumbing

    def _object_path(self, object_key: str) -> Path:
        """The file for a key, accepting only the two key shapes (no traversal)."""
        session_id, digest = parse_object_key(object_key)
        if session_id is None:
            return self._objects / "sha256" / digest[:2] / digest
        return self._objects / "sessions" / session_id / digest


def _valid_sha256(value: str) -> str:
    """Lowercased hex digest, or `BadInput` (clients may send upper-case hex)."""
    if not isinstance(value, str) or not is_sha256_hex(value.lower()):
        raise EvidenceKeyInvalid(
            f"not a sha256 hex digest: {value!r}", reason="evidence_hash_malformed"
        )
    return value.lower()


def valid_claim(sha256: str, session_id: str) -> str:
    """The lowercased digest a claim is filed under; `BadInput` for a bad hash or session."""
    digest = _valid_sha256(sha256)
    if not session_id:
        raise BadInput("session_id must not be empty", reason="bad_input")
    return digest


async def write_batched(upload: HashedUpload, chunks: AsyncIterable[bytes]) -> None:
    """Write a streamed body to `upload` in ~1 MiB batches, each in a thread while the
    event loop receives the next one.

    Hashing, encrypting and writing a batch release the GIL, so the two overlap: on the
    loop alone they took about three quarters of an upload's time. Batches are written in
    order, one at a time. Whatever ends the stream early (a refusal, a cap, a client
    gone), the batch in the thread finishes before this returns, so the caller may close
    the upload's file.
    """
    loop = asyncio.get_running_loop()
    in_thread: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size < UPLOAD_BATCH_BYTES:
                continue
            if in_thread is not None:
                await asyncio.shield(in_thread)
            in_thread = loop.run_in_executor(None, upload.write, b"".join(batch))
            batch, size = [], 0
        if in_thread is not None:
            await asyncio.shield(in_thread)
        if batch:
            upload.write(b"".join(batch))
    finally:
        if in_thread is not None and not in_thread.done():
            await asyncio.wait([in_thread])


class HashedUpload:
    """What an upload does in every store: each plaintext chunk is counted against the
    limit, hashed, and written (encrypted under the session's key, for a session object)
    to the store's temp file; the body is refused unless it hashes as promised.

    A store's subclass opens that file (`_start`) and places the finished object its own
    way, so the limit and the hash check are one piece of code for every backend.
    """

    _file: BinaryIO
    _encryptor: FrameEncryptor | None

    def __init__(
        self, kind: ArtifactKind, expected_sha256: str, max_bytes: int, session_id: str | None
    ) -> None:
        self._expected = _valid_sha256(expected_sha256)
        if max_bytes < 0:
            raise BadInput("max_bytes must be >= 0", reason="bad_input")
        self._kind = kind
        self._max_bytes = max_bytes
        # The key names the promised hash; commit refuses the object unless it matches.
        self._object_key = object_key_for(self._expected, session_id)
        self._digest = hashlib.sha256()
        self._size = 0

    def _start(self, file: BinaryIO, key: bytes | None) -> None:
        """Write to `file`: through an encryptor with `key`, in plaintext without one."""
        self._file = file
        self._encryptor = FrameEncryptor(key, self._object_key, file) if key is not None else None

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise EvidenceTooLarge(f"{self._kind.value} is larger than {self._max_bytes} bytes")
        self._digest.update(chunk)
        if self._encryptor is not None:
            self._encryptor.write(chunk)
        else:
            self._file.write(chunk)

    def _check_hash(self) -> None:
        actual = self._digest.hexdigest()
        if actual != self._expected:
            raise EvidenceHashMismatch(
                f"{self._kind.value} hashes to {actual}, not the declared {self._expected}"
            )

    def commit(self) -> None:
        """Check the promised hash and store the object (the backend's way)."""
        raise NotImplementedError

    def discard(self) -> None:
        """Always called once the upload is over: release the temp file."""
        self._file.close()

    def ref(self, content_type: str) -> ArtifactRef:
        """The stored object's ref; only called once `commit` has accepted the hash."""
        return ArtifactRef(
            kind=self._kind,
            sha256=self._expected,
            size_bytes=self._size,
            content_type=content_type,
            object_key=self._object_key,
        )


class _Upload(HashedUpload):
    """One upload in progress: a temp file under `tmp/`, hashed and counted as written."""

    def __init__(
        self,
        store: LocalEvidenceStore,
        kind: ArtifactKind,
        expected_sha256: str,
        max_bytes: int,
        session_id: str | None,
    ) -> None:
        super().__init__(kind, expected_sha256, max_bytes, session_id)
        self._store = store
        key = store._require_keys().key_for(session_id) if session_id is not None else None
        fd, name = tempfile.mkstemp(dir=store.root / "tmp", prefix=f"{kind.value}.")
        self._tmp = Path(name)
        self._start(os.fdopen(fd, "wb"), key)
        self._unadvised = 0

    def write(self, chunk: bytes) -> None:
        super().write(chunk)
        self._unadvised += len(chunk)
        if self._unadvised >= UPLOAD_WRITEBACK_BYTES and hasattr(os, "posix_fadvise"):
            # Starts writeback of the dirty pages and drops the clean ones; never blocks
            # on the disk, and has no effect on what the file holds.
            os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            self._unadvised = 0

    def commit(self) -> None:
        """Make the bytes durable, check the promised hash, then place the object."""
        if self._encryptor is not None:
            self._encryptor.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._check_hash()
        self._store._place(self._tmp, self._object_key)

    def discard(self) -> None:
        """Always called: the temp file goes, whether the object was placed or refused."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)
