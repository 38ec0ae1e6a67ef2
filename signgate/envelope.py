"""Envelope encryption of evidence: one AES-256-GCM data key per session, wrapped by a KEK.

Why per session: erasing one person's media must not touch anyone else's, and must work
on storage that refuses deletes (S3 Object Lock). Destroying the session's wrapped data key
(crypto-shredding) makes every object of that session unreadable while the objects, their
plaintext SHA-256 and every ledger entry that names them stay exactly as they were.

Why a key-encryption key (KEK): data keys at rest are only ever stored wrapped, so a copy
of the data-key directory alone decrypts nothing. `LocalKeyEncryptionKey` is a key file in
`var/keys`; a KMS implements the same two-method `KeyEncryptionKey` protocol.

Ciphertext format (`SGE1`), chunked so a 200 MiB video streams in constant memory:

    b"SGE1" | nonce_prefix (8 bytes) | frames...
    frame = length (4 bytes, big endian) | AES-GCM(key, nonce_prefix | counter (4 bytes),
            chunk, aad = object_key | counter | final flag)

The AAD binds every frame to its object key and position, and marks the last frame, so
frames cannot be reordered, swapped between objects or truncated without failing the tag.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signgate.errors import BadInput, Fault
from signgate.hashing import sha256_hex
from signgate.signer import fsync_dir, write_once

MAGIC = b"SGE1"
FRAME_PLAINTEXT_BYTES = 1024 * 1024
_TAG_BYTES = 16
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")


class EvidenceErased(BadInput):
    """The session's data key was destroyed on purpose: its media are gone for good."""

    reason = "evidence_erased"
    http_status = 410


class EvidenceUndecryptable(Fault):
    """Ciphertext or wrapped key that fails authentication: tampered, or the wrong KEK."""

    reason = "evidence_undecryptable"


def valid_session_id(session_id: str) -> str:
    """Session ids name files and object keys: refuse anything that could leave a folder."""
    if not isinstance(session_id, str) or _SESSION.fullmatch(session_id) is None:
        raise BadInput(f"not a session id: {session_id!r}", reason="session_id_invalid")
    return session_id


class KeyEncryptionKey(Protocol):
    """What wraps data keys. A KMS client would implement these two calls."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class KeyEncryptionKeyMissing(Fault):
    """Data keys exist but the KEK that wrapped them does not: restore it, never replace it."""

    reason = "kek_missing"


class LocalKeyEncryptionKey:
    """A 256-bit AES-GCM KEK in a 0o400 file, created on first use (the embedded default).

    `create=False` refuses to mint one: a KEK minted beside data keys wrapped by a lost
    one would start every process as usual while leaving all their evidence unreadable,
    found out only when someone reads it (`evidence_undecryptable`)."""

    def __init__(self, path: Path, create: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            if not create:
                raise KeyEncryptionKeyMissing(
                    f"{path} is missing while data keys wrapped by a key-encryption key "
                    "exist: restore it from a backup (a new one cannot unwrap them)"
                )
            write_once(path, secrets.token_bytes(32), mode=0o400)
        key = path.read_bytes()
        if len(key) != 32:
            raise Fault(f"{path} is not a 32-byte key", reason="key_invalid")
        self._aead = AESGCM(key)
        self._key_id = "kek-" + sha256_hex(key)[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], context)
        except InvalidTag as err:
            raise EvidenceUndecryptable("a wrapped data key failed authentication") from err


class DataKeys:
    """Per-session data keys, stored wrapped under `root` (`var/keys/data` by default).

    `<session>.json` holds the wrapped key; `<session>.erased` is the tombstone that makes
    an erased session say `evidence_erased` instead of silently getting a fresh key.
    """

    def __init__(self, root: Path, kek: KeyEncryptionKey) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._kek = kek

    def key_for(self, session_id: str) -> bytes:
        """The session's data key, created on first use (exactly once, across processes)."""
        path = self._path(session_id, "json")
        self._refuse_erased(session_id)
        if not path.exists():
            wrapped = self._kek.wrap(AESGCM.generate_key(bit_length=256), _context(session_id))
            record = {"kek_id": self._kek.key_id, "wrapped": wrapped.hex()}
            write_once(path, json.dumps(record).encode("utf-8"), mode=0o400)
            # An erasure may have landed between our first check and our write: the
            # tombstone wins, and the orphan key is never used (erase removes it again).
            self._refuse_erased(session_id)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._refuse_erased(session_id)  # erased between our check and our read
            raise
        try:
            return self._kek.unwrap(bytes.fromhex(record["wrapped"]), _context(session_id))
        except EvidenceUndecryptable as err:
            if record.get("kek_id") == self._kek.key_id:
                raise
            raise EvidenceUndecryptable(
                f"the data key of {session_id} was wrapped by {record.get('kek_id')!r}, "
                f"which this process does not hold (it holds {self._kek.key_id!r})"
            ) from err

    def erase(self, session_id: str, reason: str) -> bool:
        """Destroy the session's data key; True if there was one. The tombstone goes first,
        so no reader can ever mint a new key for an erased session."""
        tombstone = self._path(session_id, "erased")
        if not tombstone.exists():
            write_once(tombstone, reason.encode("utf-8"), mode=0o444)
        key = self._path(session_id, "json")
        existed = key.exists()
        key.unlink(missing_ok=True)
        fsync_dir(self._root)
        return existed

    def is_erased(self, session_id: str) -> bool:
        return self._path(session_id, "erased").exists()

    def _refuse_erased(self, session_id: str) -> None:
        if self.is_erased(session_id):
            raise EvidenceErased(f"session {session_id}'s evidence was erased")

    def _path(self, session_id: str, suffix: str) -> Path:
        return self._root / f"{valid_session_id(session_id)}.{suffix}"


def _context(session_id: str) -> bytes:
    return f"signgate-data-key:{session_id}".encode()


def _aad(object_key: str, counter: int, final: bool) -> bytes:
    return object_key.encode("utf-8") + struct.pack(">I?", counter, final)


class FrameEncryptor:
    """Encrypts a stream written in chunks of any size into `sink` (SGE1 frames)."""

    def __init__(self, key: bytes, object_key: str, sink: BinaryIO) -> None:
        self._aead = AESGCM(key)
        self._object_key = object_key
        self._sink = sink
        self._prefix = secrets.token_bytes(8)
        self._counter = 0
        self._pending = bytearray()
        sink.write(MAGIC + self._prefix)

    def write(self, data: bytes) -> None:
        self._pending += data
        # Keep at least one byte pending: the final frame is only known at `finish`.
        # Frames are encrypted from views of the buffer (no copy); it shrinks once after.
        done = 0
        with memoryview(self._pending) as view:
            while len(view) - done > FRAME_PLAINTEXT_BYTES:
                self._frame(view[done : done + FRAME_PLAINTEXT_BYTES], final=False)
                done += FRAME_PLAINTEXT_BYTES
        if done:
            del self._pending[:done]

    def finish(self) -> None:
        self._frame(self._pending, final=True)
        self._pending.clear()

    def _frame(self, chunk: bytes | bytearray | memoryview, final: bool) -> None:
        nonce = self._prefix + struct.pack(">I", self._counter)
        sealed = self._aead.encrypt(nonce, chunk, _aad(self._object_key, self._counter, final))
        self._sink.write(struct.pack(">I", len(sealed)))
        self._sink.write(sealed)
        self._counter += 1


def decrypt_frames(key: bytes, object_key: str, source: BinaryIO) -> Iterator[bytes]:
    """Plaintext chunks of an SGE1 object; `EvidenceUndecryptable` on any tampering."""
    header = source.read(len(MAGIC) + 8)
    if len(header) != len(MAGIC) + 8 or not header.startswith(MAGIC):
        raise EvidenceUndecryptable(f"{object_key} is not an encrypted evidence object")
    aead, prefix = AESGCM(key), header[len(MAGIC) :]
    counter = 0
    while True:
        length_bytes = source.read(4)
        if len(length_bytes) != 4:
            raise EvidenceUndecryptable(f"{object_key} is truncated (no final frame)")
        (length,) = struct.unpack(">I", length_bytes)
        sealed = source.read(length)
        if len(sealed) != length or length < _TAG_BYTES:
            raise EvidenceUndecryptable(f"{object_key} is truncated mid-frame")
        nonce = prefix + struct.pack(">I", counter)
        chunk, final = _open_frame(aead, nonce, sealed, object_key, counter)
        yield chunk
        if final:
            if source.read(1):
                raise EvidenceUndecryptable(f"{object_key} has bytes after its final frame")
            return
        counter += 1


def _open_frame(
    aead: AESGCM, nonce: bytes, sealed: bytes, object_key: str, counter: int
) -> tuple[bytes, bool]:
    """Try the frame as a middle frame, then as the final one (the flag is in the AAD)."""
    for final in (False, True):
        try:
            return aead.decrypt(nonce, sealed, _aad(object_key, counter, final)), final
        except InvalidTag:
            continue
    raise EvidenceUndecryptable(f"{object_key} frame {counter} failed authentication")


def encrypt_bytes(key: bytes, object_key: str, chunks: Iterable[bytes], sink: BinaryIO) -> None:
    """Convenience: encrypt an iterable of plaintext chunks into `sink`."""
    encryptor = FrameEncryptor(key, object_key, sink)
    for chunk in chunks:
        encryptor.write(chunk)
    encryptor.finish()


def default_data_keys(keys_dir: Path) -> DataKeys:
    """The embedded default: KEK file `keys_dir/kek.key`, wrapped keys in `keys_dir/data`.
    A KEK is minted only while no wrapped data key exists (`kek_missing` otherwise)."""
    kek = LocalKeyEncryptionKey(keys_dir / "kek.key", create=not sessions_keyed(keys_dir))
    return DataKeys(keys_dir / "data", kek)


def sessions_keyed(keys_dir: Path) -> bool:
    """Whether any session's wrapped data key is stored under `keys_dir` (erased ones
    leave only a tombstone): then sessions have run here, and their keys must not be
    replaced."""
    data = keys_dir / "data"
    return data.is_dir() and next(data.glob("*.json"), None) is not None
