"""SHA-256 and the RFC 9162 Merkle Tree Hash that seals a capture round.

The Merkle root fixes a set of artifacts under one 32-byte value that a ledger entry and an
attestation can name. We follow RFC 9162 (Certificate Transparency v2) exactly, including
its domain separation (0x00 for leaves, 0x01 for nodes) so a leaf can never be passed off
as an inner node, and so any CT-style tool can recompute our roots.

Why our own ~20 lines rather than `pymerkle`: the leaves here are the raw 32-byte values of
digests we already hold, the tree is built once in memory and thrown away, and we need the
RFC's exact split and empty-tree rules. A dependency would add a storage abstraction and
its own conventions to audit for less code than this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from signgate.errors import BadInput

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of `data`: the one spelling of a digest in signgate."""
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(value: str) -> bool:
    """True for exactly 64 lowercase hex characters (the form every model field uses)."""
    return _SHA256_HEX.fullmatch(value) is not None


def merkle_root(leaf_sha256_hex: Sequence[str]) -> str:
    """RFC 9162 Merkle Tree Hash over the raw 32-byte values of the given hex digests.

    Order is the caller's: the same digests in another order give another root. An empty
    sequence gives SHA-256 of the empty string, as the RFC defines.
    """
    leaves: list[bytes] = []
    for digest in leaf_sha256_hex:
        if not isinstance(digest, str) or not is_sha256_hex(digest):
            raise BadInput(f"not a lowercase sha256 hex digest: {digest!r}", reason="bad_sha256")
        leaves.append(bytes.fromhex(digest))
    return _tree_hash(leaves, 0, len(leaves)).hex()


def _tree_hash(leaves: list[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]); recursion depth is log2(n), so no stack concerns."""
    n = end - start
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(_LEAF_PREFIX + leaves[start]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two strictly below n
    left = _tree_hash(leaves, start, start + k)
    right = _tree_hash(leaves, start + k, end)
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()
