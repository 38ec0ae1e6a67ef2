"""Signed tree heads (RFC 9162 style checkpoints) over the audit ledger.

A checkpoint is a ledger entry of type `checkpoint` in the reserved session
`CHECKPOINT_SESSION`, written by the ledger itself every `checkpoint_every` entries (or
on `signgate audit checkpoint`). Its body is a `SignedTreeHead`: the number of entries
before it, the RFC 9162 Merkle root over their entry hashes (raw 32 bytes as leaves),
the time, the key id and an Ed25519 signature over the canonical JSON of those four.

The tree head is signed on its own (not only as a ledger entry) so an outsider holding
one public key can check it without the ledger: it is what inclusion and consistency
proofs are anchored to (`signgate.audit_proofs`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationError

from signgate.canonical import canonical_json
from signgate.hashing import merkle_root
from signgate.models import Frozen
from signgate.signer import KeyRing, Signer

CHECKPOINT_TYPE = "checkpoint"
CHECKPOINT_SESSION = "_ledger"
STH_KIND = "signgate.sth/v1"
CHECKPOINT_DOC_KIND = "signgate.checkpoint/v1"  # a checkpoint on its own (mirrors)


class SignedTreeHead(Frozen):
    tree_size: int = Field(ge=0)
    root_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    timestamp: str
    key_id: str
    signature_b64: str


def sth_bytes(tree_size: int, root_hash: str, timestamp: str, key_id: str) -> bytes:
    """The canonical bytes a tree head signature covers (the outside verifier's contract).

    The `kind` tag keeps a tree head signature from ever being valid as any other
    signgate signature made by the same key.
    """
    return canonical_json(
        {
            "kind": STH_KIND,
            "tree_size": tree_size,
            "root_hash": root_hash,
            "timestamp": timestamp,
            "key_id": key_id,
        }
    )


def sign_tree_head(signer: Signer, entry_hashes: Sequence[str], timestamp: str) -> SignedTreeHead:
    root = merkle_root(entry_hashes)
    message = sth_bytes(len(entry_hashes), root, timestamp, signer.key_id)
    return SignedTreeHead(
        tree_size=len(entry_hashes),
        root_hash=root,
        timestamp=timestamp,
        key_id=signer.key_id,
        signature_b64=base64.b64encode(signer.sign(message)).decode("ascii"),
    )


def tree_head_signature_ok(sth: SignedTreeHead, keyring: KeyRing) -> bool:
    try:
        signature = base64.b64decode(sth.signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if base64.b64encode(signature).decode("ascii") != sth.signature_b64:
        return False  # only the one canonical spelling (see ledger._strict_b64decode)
    message = sth_bytes(sth.tree_size, sth.root_hash, sth.timestamp, sth.key_id)
    return keyring.verify(sth.key_id, signature, message)


def parse_tree_head(body: Any) -> SignedTreeHead | None:
    try:
        return SignedTreeHead.model_validate(body)
    except ValidationError:
        return None


def checkpoint_problem(
    body: Any, expected_size: int, expected_root: str, keyring: KeyRing
) -> str | None:
    """Why a stored checkpoint body does not hold for the entries before it, or None."""
    sth = parse_tree_head(body)
    if sth is None:
        return "checkpoint_malformed"
    if sth.tree_size != expected_size:
        return "checkpoint_tree_size_mismatch"
    if sth.root_hash != expected_root:
        return "checkpoint_root_mismatch"
    if not tree_head_signature_ok(sth, keyring):
        return "checkpoint_signature_invalid"
    return None
