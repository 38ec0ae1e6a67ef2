"""Proofs an outsider checks with one public key: inclusion of an entry, log consistency.

`prove_inclusion(ledger, seq)` anchors one entry to the latest signed checkpoint with an
RFC 9162 audit path; `prove_consistency(ledger, old, new)` shows the tree of an earlier
checkpoint is a prefix of a later one (nothing was rewritten or dropped in between).
`check_proof(document, keyring)` verifies either from the JSON alone: no ledger access.

What a valid inclusion proof establishes: the entry (its canonical bytes recompute its
hash, and its own signature holds) is leaf `seq - 1` of the tree whose root the ledger's
key signed at `tree_size`. Anyone holding that tree head can hold the ledger to it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Literal

from pydantic import ValidationError

from signgate.checkpoints import (
    CHECKPOINT_DOC_KIND,
    CHECKPOINT_SESSION,
    CHECKPOINT_TYPE,
    SignedTreeHead,
    parse_tree_head,
    tree_head_signature_ok,
)
from signgate.errors import BadInput, SigngateError
from signgate.ledger import Ledger, recomputed_entry_hash
from signgate.models import Frozen, LedgerEntry
from signgate.proofs import (
    consistency_path,
    inclusion_path,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from signgate.signer import KeyRing

INCLUSION_KIND: Final = "signgate.inclusion_proof/v1"
CONSISTENCY_KIND: Final = "signgate.consistency_proof/v1"


class ProofError(SigngateError):
    """A proof cannot be made (no checkpoint covers the entry, unknown checkpoint...)."""

    reason = "proof_unavailable"
    http_status = 404


class ProofInvalid(BadInput):
    """A proof does not verify; `reason` names the first check that failed."""

    reason = "proof_invalid"


class InclusionProof(Frozen):
    kind: Literal["signgate.inclusion_proof/v1"] = INCLUSION_KIND
    entry: LedgerEntry
    leaf_index: int
    tree_size: int
    audit_path: list[str]
    checkpoint: SignedTreeHead
    checkpoint_seq: int


class CheckpointDocument(Frozen):
    """One checkpoint on its own, as `signgate.checkpoint_mirror` writes it."""

    kind: Literal["signgate.checkpoint/v1"]
    ledger_seq: int
    checkpoint: SignedTreeHead


class ConsistencyProof(Frozen):
    kind: Literal["signgate.consistency_proof/v1"] = CONSISTENCY_KIND
    old: SignedTreeHead
    new: SignedTreeHead
    consistency_path: list[str]


def _leaves(ledger: Ledger, sth: SignedTreeHead) -> list[bytes]:
    """The checkpoint's leaves, refusing to prove from a ledger that no longer matches it."""
    leaves = [bytes.fromhex(h) for h in ledger.entry_hashes(sth.tree_size)]
    if len(leaves) != sth.tree_size or tree_hash(leaves).hex() != sth.root_hash:
        raise ProofError(
            f"the ledger no longer matches the checkpoint of size {sth.tree_size}",
            reason="checkpoint_root_mismatch",
        )
    return leaves


def _checkpoint(entry: LedgerEntry | None, what: str) -> tuple[int, SignedTreeHead]:
    sth = parse_tree_head(entry.body) if entry is not None else None
    if entry is None or sth is None:
        raise ProofError(f"no checkpoint {what}", reason="checkpoint_missing")
    return entry.seq, sth


def prove_inclusion(ledger: Ledger, seq: int) -> InclusionProof:
    """Entry `seq` against the latest checkpoint (which must cover it)."""
    checkpoints = ledger.entries(CHECKPOINT_SESSION)
    checkpoint_seq, sth = _checkpoint(checkpoints[-1] if checkpoints else None, "yet")
    entry = ledger.get(seq)
    if entry is None:
        raise ProofError(f"no ledger entry {seq}", reason="entry_missing")
    if seq > sth.tree_size:
        raise ProofError(
            f"the latest checkpoint covers entries 1..{sth.tree_size}; run"
            " `signgate audit checkpoint` to cover {seq}",
            reason="checkpoint_missing",
        )
    path = inclusion_path(_leaves(ledger, sth), seq - 1)
    return InclusionProof(
        entry=entry,
        leaf_index=seq - 1,
        tree_size=sth.tree_size,
        audit_path=[node.hex() for node in path],
        checkpoint=sth,
        checkpoint_seq=checkpoint_seq,
    )


def prove_consistency(ledger: Ledger, old_size: int, new_size: int) -> ConsistencyProof:
    """The checkpoints of tree sizes `old_size` <= `new_size` and the proof linking them."""
    if not 0 < old_size <= new_size:
        raise BadInput("need 0 < OLD <= NEW (checkpoint tree sizes)", reason="bad_input")
    _, old = _checkpoint(_by_size(ledger, old_size), f"of tree size {old_size}")
    _, new = _checkpoint(_by_size(ledger, new_size), f"of tree size {new_size}")
    leaves = _leaves(ledger, new)
    _leaves(ledger, old)
    return ConsistencyProof(
        old=old, new=new, consistency_path=[n.hex() for n in consistency_path(leaves, old_size)]
    )


def _by_size(ledger: Ledger, tree_size: int) -> LedgerEntry | None:
    receipt = ledger.receipt_for(f"{CHECKPOINT_TYPE}:{tree_size}")
    return ledger.get(receipt.seq) if receipt is not None else None


# --------------------------------------------------------------------------- checking


def check_proof(document: Any, keyring: KeyRing) -> str:
    """Verify an inclusion or consistency proof (or a mirrored checkpoint); a summary.

    Raises `ProofInvalid` whose `reason` names the first failing check.
    """
    kind = document.get("kind") if isinstance(document, dict) else None
    try:
        if kind == INCLUSION_KIND:
            return _check_inclusion(InclusionProof.model_validate(document), keyring)
        if kind == CONSISTENCY_KIND:
            return _check_consistency(ConsistencyProof.model_validate(document), keyring)
        if kind == CHECKPOINT_DOC_KIND:
            sth = CheckpointDocument.model_validate(document).checkpoint
            _check_head(sth, keyring)
            return f"checkpoint of {sth.tree_size} entries signed by {sth.key_id}"
    except ValidationError as err:
        raise ProofInvalid(f"malformed proof: {err}", reason="proof_malformed") from err
    raise ProofInvalid(f"unknown proof kind {kind!r}", reason="proof_malformed")


def _nodes(hexes: list[str]) -> list[bytes]:
    try:
        nodes = [bytes.fromhex(h) for h in hexes]
    except ValueError as err:
        raise ProofInvalid("proof path is not hex", reason="proof_malformed") from err
    if any(len(node) != 32 for node in nodes):
        raise ProofInvalid("proof path node is not 32 bytes", reason="proof_malformed")
    return nodes


def _check_head(sth: SignedTreeHead, keyring: KeyRing) -> None:
    if sth.key_id not in keyring:
        raise ProofInvalid(f"checkpoint key {sth.key_id} is not trusted", reason="unknown_key")
    if not tree_head_signature_ok(sth, keyring):
        raise ProofInvalid("checkpoint signature invalid", reason="checkpoint_signature_invalid")


def _check_inclusion(proof: InclusionProof, keyring: KeyRing) -> str:
    _check_head(proof.checkpoint, keyring)
    entry = proof.entry
    recomputed = recomputed_entry_hash(entry)
    if recomputed != entry.entry_hash:
        raise ProofInvalid("entry does not hash to its entry_hash", reason="entry_hash_mismatch")
    try:
        signature = base64.b64decode(entry.signature_b64, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if not keyring.verify(entry.key_id, signature, bytes.fromhex(entry.entry_hash)):
        raise ProofInvalid("entry signature invalid or key unknown", reason="signature_invalid")
    if proof.leaf_index != entry.seq - 1:
        raise ProofInvalid("leaf index is not the entry's seq - 1", reason="leaf_index_mismatch")
    if proof.tree_size != proof.checkpoint.tree_size:
        raise ProofInvalid("tree size differs from the checkpoint's", reason="tree_size_mismatch")
    if not verify_inclusion(
        proof.leaf_index,
        proof.tree_size,
        bytes.fromhex(entry.entry_hash),
        _nodes(proof.audit_path),
        bytes.fromhex(proof.checkpoint.root_hash),
    ):
        raise ProofInvalid("audit path does not lead to the signed root", reason="not_included")
    return (
        f"entry {entry.seq} ({entry.entry_type}, session {entry.session_id}) is included in"
        f" the checkpoint of {proof.tree_size} entries signed by {proof.checkpoint.key_id}"
    )


def _check_consistency(proof: ConsistencyProof, keyring: KeyRing) -> str:
    _check_head(proof.old, keyring)
    _check_head(proof.new, keyring)
    if not verify_consistency(
        proof.old.tree_size,
        proof.new.tree_size,
        bytes.fromhex(proof.old.root_hash),
        bytes.fromhex(proof.new.root_hash),
        _nodes(proof.consistency_path),
    ):
        raise ProofInvalid("the old tree is not a prefix of the new", reason="not_consistent")
    return (
        f"checkpoint of {proof.old.tree_size} entries is a prefix of the checkpoint of"
        f" {proof.new.tree_size} entries"
    )
