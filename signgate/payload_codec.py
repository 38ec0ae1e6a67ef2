"""Temporal payload encryption: AES-256-GCM with a key id in each payload's metadata.

Workflow inputs, results, signals, queries and activity arguments carry applicant data
(subject, intent, callback URL, attestation claims). Temporal stores them in its history
for as long as the namespace retains it, and anyone who can read the history (the UI, a
`tctl`/`temporal` user, a database dump) would see them. Every payload we send is therefore
encrypted by the client or worker *before* it leaves the process; the server only ever
holds ciphertext.

Each encrypted payload is `Payload(metadata={"encoding": b"binary/encrypted",
"encryption-key-id": <key id>}, data=nonce || AES-GCM(serialized original payload))`.
The key id is bound into the ciphertext as associated data, so a payload cannot be
re-labelled with another key id without failing authentication.

Rotation: the newest key encrypts, every configured key decrypts, so payloads written
before a rotation stay readable. Payloads without our encoding (histories recorded before
encryption existed, e.g. `tests/histories`) pass through decode untouched; a payload that
claims our encoding but names an unknown key, or fails authentication, is an error, never
silently passed on.

Keys come from `SIGNGATE_PAYLOAD_KEYS` (base64, newest first) when set, else from files
`var/keys/payload/payload-<ns>.aes256` (raw 32 bytes; the largest name is the newest).
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from signgate.envelope import sessions_keyed
from signgate.errors import BadInput, Fault
from signgate.hashing import sha256_hex
from signgate.settings import Settings
from signgate.signer import write_once

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
PAYLOAD_KEYS_SUBDIR = "payload"
KEY_FILE_PREFIX = "payload-"
KEY_FILE_SUFFIX = ".aes256"
# The first key any process creates has this fixed name, so workers starting at once on
# an empty directory agree on one key (the first link wins, see `write_once`).
FIRST_KEY_NAME = f"{KEY_FILE_PREFIX}{0:020d}{KEY_FILE_SUFFIX}"


class PayloadKeyUnknown(Fault):
    """A payload names a key we do not hold: it cannot be read here (not a retryable fault
    of the payload itself; the operator must configure the key)."""

    reason = "payload_key_unknown"


class PayloadKeyMissing(Fault):
    """Sessions have run here but no payload key file is left: restore it, never replace it."""

    reason = "payload_key_missing"


class PayloadTampered(BadInput):
    """Authentication failed: the payload was changed or is not ours; no retry helps."""

    reason = "payload_decrypt_failed"


def payload_key_id(key: bytes) -> str:
    """16 hex chars of SHA-256 over a domain tag and the key: names the key, reveals nothing
    usable (a 256-bit random key cannot be recovered from its hash)."""
    return sha256_hex(b"signgate-payload-key-id\x00" + key)[:16]


@dataclass(frozen=True)
class PayloadKeys:
    """Every key that may decrypt, by id, and the id of the one that encrypts."""

    keys: Mapping[str, bytes]
    active_id: str

    @classmethod
    def of(cls, newest_first: Sequence[bytes]) -> PayloadKeys:
        if not newest_first:
            raise BadInput("no payload encryption key configured", reason="payload_key_missing")
        for key in newest_first:
            if len(key) != KEY_BYTES:
                raise BadInput(
                    f"a payload key must be {KEY_BYTES} bytes, not {len(key)}",
                    reason="payload_key_invalid",
                )
        return cls({payload_key_id(k): k for k in newest_first}, payload_key_id(newest_first[0]))


class AesGcmPayloadCodec(PayloadCodec):
    """Encrypts with the active key, decrypts with whichever key the payload names."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._keys = keys
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.keys.items()}

    @property
    def active_key_id(self) -> str:
        return self._keys.active_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys.keys))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self._keys.active_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, payload.SerializeToString(), kid.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_META: kid.encode()}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; anything not encrypted by us is returned as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID_META, b"").decode("ascii", "replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadKeyUnknown(f"payload encrypted with unknown key id {kid!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, kid.encode())
        except InvalidTag as err:
            raise PayloadTampered(f"payload under key {kid} fails authentication") from err
        original = Payload()
        original.ParseFromString(plain)
        return original


def codec_for(settings: Settings) -> AesGcmPayloadCodec:
    """The codec every client and worker of this deployment uses."""
    if settings.payload_keys:
        keys = keys_from_settings([k.get_secret_value() for k in settings.payload_keys])
    else:
        keys = load_or_create_keys(settings.keys_dir)
    return AesGcmPayloadCodec(keys)


def existing_codec_for(settings: Settings) -> AesGcmPayloadCodec | None:
    """The codec if any key exists, creating none: for readers such as replay, which must
    not leave a new key behind (a key nobody encrypted with decrypts nothing)."""
    if settings.payload_keys or key_files(settings.keys_dir):
        return codec_for(settings)
    return None


# ---------------------------------------------------------------------------- key files


def keys_from_settings(encoded: Sequence[str]) -> PayloadKeys:
    """`SIGNGATE_PAYLOAD_KEYS`: base64 keys, newest (the encrypting one) first."""
    try:
        raw = [base64.b64decode(k, validate=True) for k in encoded]
    except (binascii.Error, ValueError) as err:
        raise BadInput("a payload key is not base64", reason="payload_key_invalid") from err
    return PayloadKeys.of(raw)


def key_files(keys_dir: Path) -> list[Path]:
    """Payload key files, oldest first (names sort by creation time)."""
    directory = keys_dir / PAYLOAD_KEYS_SUBDIR
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{KEY_FILE_PREFIX}*{KEY_FILE_SUFFIX}"))


def load_or_create_keys(keys_dir: Path) -> PayloadKeys:
    """Every key file under `keys_dir/payload`, creating the first key once if none exist.

    Not once sessions have run here (their wrapped evidence keys are in `keys_dir/data`):
    their histories were encrypted under a key that is gone, and a fresh key under the
    first key's name would leave them stuck (`payload_key_unknown`) and clash with the
    backup when it is restored. Refused with `payload_key_missing` instead."""
    if not key_files(keys_dir):
        if sessions_keyed(keys_dir):
            raise PayloadKeyMissing(
                f"no payload key in {keys_dir / PAYLOAD_KEYS_SUBDIR} while sessions' evidence "
                "keys exist: restore it from a backup, or configure SIGNGATE_PAYLOAD_KEYS"
            )
        _write_key(keys_dir, FIRST_KEY_NAME)
    return PayloadKeys.of([p.read_bytes() for p in reversed(key_files(keys_dir))])


def rotate_key(keys_dir: Path) -> PayloadKeys:
    """Add a new newest key; processes that load keys afterwards encrypt with it, and
    every older key still decrypts."""
    load_or_create_keys(keys_dir)
    _write_key(keys_dir, f"{KEY_FILE_PREFIX}{time.time_ns():020d}{KEY_FILE_SUFFIX}")
    return load_or_create_keys(keys_dir)


def _write_key(keys_dir: Path, name: str) -> None:
    directory = keys_dir / PAYLOAD_KEYS_SUBDIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_once(directory / name, AESGCM.generate_key(bit_length=256), mode=0o600)
