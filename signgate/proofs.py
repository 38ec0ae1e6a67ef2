"""RFC 9162 (Certificate Transparency v2) Merkle audit paths and consistency proofs.

The tree is the one `signgate.hashing.merkle_root` builds: leaves are raw 32-byte
digests, leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right),
split at the largest power of two below n. Generation follows the RFC's recursive
definitions (2.1.3.1 PATH, 2.1.4.1 PROOF/SUBPROOF) and verification its iterative
algorithms (2.1.3.2, 2.1.4.2); being two different formulations, each tests the other.

Why not `pymerkle`: its proofs are its own format (a path that includes the leaf plus
a rule/subset bit vector, 1-based indices) rather than RFC 9162 audit paths, so an
outside CT-style verifier could not check them; the RFC algorithms are short.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw leaves (RFC 9162 2.1.1)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1: the audit path of leaf `index` (0-based)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_path(leaves[:k], index), tree_hash(leaves[k:])]
    return [*inclusion_path(leaves[k:], index - k), tree_hash(leaves[:k])]


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1 for 0 < old_size <= n."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"old size {old_size} outside 1..{len(leaves)}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [tree_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), tree_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), tree_hash(leaves[:k])]


def root_from_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes]
) -> bytes | None:
    """RFC 9162 2.1.3.2: the root the path leads to, or None if the path cannot fit."""
    if not 0 <= leaf_index < tree_size:
        return None
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(leaf_index, tree_size, leaf, path) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: True iff `path` proves the old tree is a prefix of the new one."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleFrontier:
    """The roots of the perfect subtrees of a growing tree: its root in O(log n) per leaf.

    An RFC 9162 tree of n leaves is the perfect subtrees for the binary digits of n, left
    to right, folded from the right; so `verify` can check every checkpoint's root in the
    same single pass over the chain.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (size, root), sizes strictly decreasing

    def append(self, leaf_hex: str) -> None:
        size, node = 1, leaf_hash(bytes.fromhex(leaf_hex))
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, node = left_size + size, node_hash(left, node)
        self._stack.append((size, node))

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node

    def root_hex(self) -> str:
        return self.root().hex()
