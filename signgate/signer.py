"""The one signer (Ed25519) and the key ring that verifies what it signed.

Ledger entries, seal stamps and attestations are all signed by `Signer`, and all verified
through `KeyRing`, which holds public keys only: an auditor or a relying app never needs
(and never gets) a private key. Keys are files under `var/keys` in the embedded setup; a
KMS/HSM signer can replace `Signer` behind the `SigningKey` interface (`key_id`,
`public_key`, `sign`).

A key id is the first 16 hex characters of SHA-256 over the raw 32-byte public key: short
enough for a JWS `kid` and a ledger column, stable across PEM re-encodings.

Rotation (`signgate signing-key rotate`): the active key is the newest of
`signgate.ed25519.pem` (the first key) and `signgate-<ns>.ed25519.pem` (one per rotation;
the name sorts by creation time). A rotation writes the new key pair, then deletes the
older private keys (a retired key must never sign again: a suspected leak is the usual
reason to rotate) and keeps every public key, so everything signed before still verifies.
A process picks the active key when it loads it (worker and gateway start).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from signgate.errors import BadInput, Fault
from signgate.hashing import sha256_hex

PRIVATE_SUFFIX = ".ed25519.pem"
PUBLIC_SUFFIX = ".ed25519.pub.pem"
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ACTIVE_KEY_NAME = "signgate"
# `signgate` (the first key) or `signgate-<20-digit ns>` (a rotation): sorting the names
# orders them by age, because "signgate" is a prefix of the others.
_ROTATED_NAME = re.compile(rf"{ACTIVE_KEY_NAME}(-\d{{20}})?")


class SigningKey(Protocol):
    """The one signer interface: what seal stamps, ledger entries, checkpoints and
    attestations need from a key. `Signer` (a key file) is one; a KMS/HSM key is another."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> Ed25519PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """First 16 hex chars of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM: the form we publish and `KeyRing` reads."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class SigningKeyRetired(Fault):
    """A retired key's name was asked to sign: a retired key must never sign again."""

    reason = "signing_key_retired"


class SigningKeyMissing(Fault):
    """No private key may sign here, or the ledger names a key this directory lacks: restore
    the keys from a backup (or rotate on purpose); never mint a stand-in silently."""

    reason = "signing_key_missing"


class Signer:
    """Ed25519 signing key with its key id. Thread-safe: it holds no mutable state."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self._key_id = key_id_for(self._public_key)

    @classmethod
    def load_or_create(cls, keys_dir: Path, name: str = "signgate") -> Signer:
        """Load `keys_dir/<name>.ed25519.pem`, creating the key pair once if it is absent.

        Safe when several workers start at once: each candidate key is written to a temp
        file and hard-linked into place, which fails if the name exists, so the first
        writer wins, nobody ever overwrites a key, and every loser loads the winner's key.
        """
        if not _KEY_NAME.fullmatch(name):
            raise BadInput(f"invalid key name {name!r}", reason="key_name_invalid")
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_path = keys_dir / f"{name}{PRIVATE_SUFFIX}"
        public_path = keys_dir / f"{name}{PUBLIC_SUFFIX}"
        if not private_path.exists() and public_path.exists():
            raise SigningKeyRetired(
                f"{name} in {keys_dir} is a retired signing key (its public key is kept, its "
                "private key deleted): it is never minted again; sign with the active key"
            )
        if not private_path.exists():
            candidate = Ed25519PrivateKey.generate()
            pem = candidate.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_once(private_path, pem, mode=0o600)
        signer = cls(_load_private(private_path))
        write_once(public_path, signer.public_key_pem(), mode=0o644)
        if key_id_for(_load_public(public_path)) != signer.key_id:
            raise Fault(
                f"{public_path} does not match the private key {private_path}",
                reason="key_pair_mismatch",
            )
        return signer

    @classmethod
    def load_active(cls, keys_dir: Path) -> Signer:
        """The newest `signgate` key in `keys_dir`, creating the first one in a fresh
        directory. Not where public keys are kept but no private key is left: that is a
        lost or wrongly restored key, and a stand-in would sign on unnoticed."""
        for _ in range(3):
            names = signing_key_names(keys_dir)
            if not names:
                if len(KeyRing.from_dir(keys_dir)):
                    raise SigningKeyMissing(
                        f"no active signing key in {keys_dir}, only the public keys of "
                        "earlier ones: restore the private key from a backup, or run "
                        "`signgate signing-key rotate` to make a new one on purpose"
                    )
                return cls.load_or_create(keys_dir, ACTIVE_KEY_NAME)
            try:
                return cls(_load_private(keys_dir / f"{names[-1]}{PRIVATE_SUFFIX}"))
            except FileNotFoundError:
                continue  # retired by a concurrent rotation: list again
        raise Fault(f"no stable active signing key in {keys_dir}", reason="key_missing")

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private_key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """64-byte Ed25519 signature over `data` (deterministic: same data, same bytes)."""
        return self._private_key.sign(data)

    def public_key_pem(self) -> bytes:
        return public_pem(self._public_key)


def signing_key_names(keys_dir: Path) -> list[str]:
    """Names of the signing keys that still have a private key, oldest first."""
    if not keys_dir.is_dir():
        return []
    names = (p.name.removesuffix(PRIVATE_SUFFIX) for p in keys_dir.glob(f"*{PRIVATE_SUFFIX}"))
    return sorted(n for n in names if _ROTATED_NAME.fullmatch(n))


def rotate_signing_key(keys_dir: Path) -> Signer:
    """Make a new active signing key; retire (delete) the older private keys, keep every
    public key for verification."""
    if not len(KeyRing.from_dir(keys_dir)):
        Signer.load_active(keys_dir)  # the first key exists before any rotation
    new_name = f"{ACTIVE_KEY_NAME}-{time.time_ns():020d}"
    signer = Signer.load_or_create(keys_dir, new_name)
    for name in signing_key_names(keys_dir):
        if name < new_name:
            (keys_dir / f"{name}{PRIVATE_SUFFIX}").unlink(missing_ok=True)
    fsync_dir(keys_dir)
    return signer


class KeyRing:
    """Public keys by key id: everything a verifier needs and nothing it must not have."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = dict(keys or {})

    @classmethod
    def from_pems(cls, pems: Iterable[bytes]) -> KeyRing:
        keys: dict[str, Ed25519PublicKey] = {}
        for pem in pems:
            key = _parse_public(pem, source="PEM")
            keys[key_id_for(key)] = key
        return cls(keys)

    @classmethod
    def from_dir(cls, keys_dir: Path) -> KeyRing:
        """Every `*.pub.pem` in `keys_dir`; private key files are never read.

        A missing directory gives an empty ring, so verification reports `unknown_key`
        (an operator can act on that) rather than crashing on a mistyped path.
        """
        if not keys_dir.is_dir():
            return cls()
        paths = sorted(keys_dir.glob("*.pub.pem"))
        keys = {}
        for path in paths:
            key = _load_public(path)
            keys[key_id_for(key)] = key
        return cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def get(self, key_id: str) -> Ed25519PublicKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, key_id: str, signature: bytes, data: bytes) -> bool:
        """True only if `key_id` is known and `signature` is its signature over `data`."""
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def write_once(path: Path, data: bytes, *, mode: int) -> bool:
    """Atomically create `path` with `data` unless it already exists; True if we created it.

    The bytes are written and fsynced under a temp name in the same directory, then
    `os.link`ed to `path`: link refuses an existing name, and readers never see a partial
    file (unlike O_EXCL on the final name, which exposes an empty file while writing).
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fchmod(tmp.fileno(), mode)
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        os.unlink(tmp_name)


def fsync_dir(directory: Path) -> None:
    """Make a new directory entry (link, rename) durable across a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise Fault(f"{path} is not an Ed25519 private key", reason="key_invalid")
    return key


def _load_public(path: Path) -> Ed25519PublicKey:
    return _parse_public(path.read_bytes(), source=str(path))


def _parse_public(pem: bytes, *, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as err:
        raise BadInput(f"{source} is not a PEM public key: {err}", reason="key_invalid") from err
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"{source} is not an Ed25519 public key", reason="key_invalid")
    return key
