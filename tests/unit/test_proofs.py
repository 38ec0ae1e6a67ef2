"""RFC 9162 audit paths and consistency proofs: generation (the RFC's recursive
definitions) against verification (the RFC's iterative algorithms) and against the
independent `hashing.merkle_root`, for every leaf and every pair of sizes."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from signgate.hashing import merkle_root
from signgate.proofs import (
    MerkleFrontier,
    consistency_path,
    inclusion_path,
    root_from_inclusion,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

leaves_st = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


def root_of(leaves: list[bytes]) -> bytes:
    return bytes.fromhex(merkle_root([leaf.hex() for leaf in leaves]))


def flip(node: bytes) -> bytes:
    return bytes([node[0] ^ 1]) + node[1:]


@settings(max_examples=60, deadline=None)
@given(leaves_st)
def test_every_leaf_proves_against_the_independent_root(leaves: list[bytes]) -> None:
    root = root_of(leaves)
    assert tree_hash(leaves) == root
    n = len(leaves)
    for index, leaf in enumerate(leaves):
        path = inclusion_path(leaves, index)
        assert len(path) <= max(1, n - 1).bit_length()
        assert verify_inclusion(index, n, leaf, path, root)
        other = leaves[(index + 1) % n]
        if other != leaf:
            assert not verify_inclusion(index, n, other, path, root)
        for k in range(len(path)):  # any altered node breaks it
            bad = [*path[:k], flip(path[k]), *path[k + 1 :]]
            assert not verify_inclusion(index, n, leaf, bad, root)
        if n > 1 and len(set(leaves)) == n:  # the same path at another index
            assert not verify_inclusion((index + 1) % n, n, leaf, path, root)
        assert root_from_inclusion(index, n, leaf, [*path, root]) is None  # too long
        assert root_from_inclusion(n, n, leaf, path) is None  # index outside the tree


@settings(max_examples=25, deadline=None)
@given(leaves_st)
def test_every_pair_of_sizes_is_consistent(leaves: list[bytes]) -> None:
    n = len(leaves)
    roots = [root_of(leaves[:size]) for size in range(n + 1)]
    for new in range(1, n + 1):
        for old in range(1, new + 1):
            path = consistency_path(leaves[:new], old)
            assert verify_consistency(old, new, roots[old], roots[new], path)
            if old < new:
                assert not verify_consistency(old, new, flip(roots[old]), roots[new], path)
                assert not verify_consistency(old, new, roots[old], flip(roots[new]), path)
                assert not verify_consistency(old, new, roots[old], roots[new], [])
                assert not verify_consistency(
                    old, new, roots[old], roots[new], [flip(path[0]), *path[1:]]
                )


@settings(max_examples=25, deadline=None)
@given(leaves_st, st.binary(min_size=32, max_size=32))
def test_a_rewritten_prefix_is_not_consistent(leaves: list[bytes], other: bytes) -> None:
    n = len(leaves)
    for old in range(1, n):
        rewritten = [*leaves[: old - 1], other, *leaves[old:]]
        if rewritten == leaves:
            continue
        path = consistency_path(rewritten, old)
        assert not verify_consistency(old, n, root_of(leaves[:old]), root_of(rewritten), path)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=140))
def test_frontier_root_matches_every_prefix(leaves: list[bytes]) -> None:
    frontier = MerkleFrontier()
    assert frontier.root() == hashlib.sha256(b"").digest()
    for size, leaf in enumerate(leaves, start=1):
        frontier.append(leaf.hex())
        assert frontier.root() == root_of(leaves[:size])


def test_rfc_shapes_for_a_seven_leaf_tree() -> None:
    """RFC 9162 2.1.5's example tree of 7 leaves: path lengths and consistency shapes."""
    leaves = [bytes([i]) * 32 for i in range(7)]
    assert [len(inclusion_path(leaves, i)) for i in range(7)] == [3, 3, 3, 3, 3, 3, 2]
    # PROOF(3, D[7]) = [c, d, g, l]; PROOF(4, D[7]) = [l]; PROOF(6, D[7]) = [i, j, k]
    assert len(consistency_path(leaves, 3)) == 4
    assert consistency_path(leaves, 4) == [tree_hash(leaves[4:])]
    assert len(consistency_path(leaves, 6)) == 3
