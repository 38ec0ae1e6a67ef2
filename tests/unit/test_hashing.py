"""SHA-256 and the RFC 9162 Merkle Tree Hash, against vectors written out by hand."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signgate.errors import BadInput
from signgate.hashing import merkle_root, sha256_hex

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LEAVES = [sha256_hex(bytes([i])) for i in range(5)]  # digests of b"\x00" .. b"\x04"


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(index: int) -> bytes:
    """RFC 9162: MTH({d}) = SHA-256(0x00 || d), d = the raw 32 bytes of the digest."""
    return h(b"\x00" + bytes.fromhex(LEAVES[index]))


def node(left: bytes, right: bytes) -> bytes:
    return h(b"\x01" + left + right)


def test_sha256_hex_is_lowercase_hex_of_the_digest() -> None:
    assert sha256_hex(b"") == EMPTY_SHA256
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_empty_tree_is_sha256_of_the_empty_string() -> None:
    assert merkle_root([]) == EMPTY_SHA256


def test_one_leaf_is_the_prefixed_leaf_hash_not_the_leaf_itself() -> None:
    assert merkle_root(LEAVES[:1]) == leaf(0).hex()
    assert merkle_root(LEAVES[:1]) != LEAVES[0]


def test_two_leaves() -> None:
    assert merkle_root(LEAVES[:2]) == node(leaf(0), leaf(1)).hex()


def test_three_leaves_split_at_two() -> None:
    assert merkle_root(LEAVES[:3]) == node(node(leaf(0), leaf(1)), leaf(2)).hex()


def test_five_leaves_split_at_four() -> None:
    four = node(node(leaf(0), leaf(1)), node(leaf(2), leaf(3)))
    assert merkle_root(LEAVES) == node(four, leaf(4)).hex()


def test_pinned_roots_do_not_drift() -> None:
    # Computed once with bare hashlib, outside this code base; a change here would
    # invalidate every seal and attestation already issued.
    assert merkle_root(LEAVES[:3]) == (
        "d1f13800048f5909d4043fc0c152f6643280cba608b672715e56ce159a20629f"
    )
    assert merkle_root(LEAVES) == (
        "6b313b611b40676b9e1dfd70c4503f2379f88f0f1c2740fb7e1cacc32c113465"
    )


def test_order_matters() -> None:
    assert merkle_root([LEAVES[0], LEAVES[1]]) != merkle_root([LEAVES[1], LEAVES[0]])


@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40),
    st.data(),
)
def test_one_changed_leaf_changes_the_root(raw: list[bytes], data: st.DataObject) -> None:
    leaves = [digest.hex() for digest in raw]
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    replacement = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != raw[index]))
    changed = leaves[:index] + [replacement.hex()] + leaves[index + 1 :]
    assert merkle_root(changed) != merkle_root(leaves)


def test_a_leaf_cannot_pose_as_an_inner_node() -> None:
    # Second-preimage resistance from domain separation: the root of two leaves is a
    # 32-byte value, but as a single leaf it hashes differently.
    two = merkle_root(LEAVES[:2])
    assert merkle_root([two]) != two


@pytest.mark.parametrize("bad", ["ab", "G" * 64, LEAVES[0].upper(), LEAVES[0] + "00"])
def test_malformed_leaf_digest_is_refused(bad: str) -> None:
    with pytest.raises(BadInput) as err:
        merkle_root([LEAVES[0], bad])
    assert err.value.reason == "bad_sha256"
