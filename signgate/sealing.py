"""Seal one capture round: re-verify what was stored, fix it under a Merkle root, stamp it.

The seal is what every later step points at: checks run on sealed artifacts, the decision
and the attestation name the Merkle root. Sealing therefore trusts nothing the client
said: it re-hashes the stored bytes, and records (rather than hides) two warning signs
for the policy to weigh: the same capture already submitted by another session
(`replayed_capture`) and a capture not made for this session's challenge
(`challenge_mismatch`).

Sealing the same round twice gives the same record byte for byte (sorted artifacts,
deterministic Ed25519, claims that return the claiming session), so a retried activity
appends the same ledger body and the ledger's idempotency holds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from signgate.canonical import canonical_json
from signgate.errors import BadInput
from signgate.evidence import (
    EvidenceHashMismatch,
    EvidenceKeyInvalid,
    EvidenceStore,
    parse_object_key,
)
from signgate.hashing import merkle_root
from signgate.models import ArtifactRef, CaptureMetadata, Frozen, SealedEvidence
from signgate.signer import KeyRing, Signer

FLAG_REPLAYED_CAPTURE = "replayed_capture"
FLAG_CHALLENGE_MISMATCH = "challenge_mismatch"


class SealRecord(Frozen):
    """The stamped seal of one round; `SealedEvidence` is this plus its ledger receipt."""

    session_id: str
    round: int
    artifacts: list[ArtifactRef]
    merkle_root: str
    stamp_key_id: str
    stamp_signature_b64: str
    flags: list[str]


_STAMPED_FIELDS = frozenset(SealRecord.model_fields) - {"stamp_signature_b64"}


def seal_round(
    store: EvidenceStore,
    signer: Signer,
    session_id: str,
    round_no: int,
    artifacts: Sequence[ArtifactRef],
    capture: CaptureMetadata,
    expected_nonce: str,
    extra_flags: Sequence[str] = (),
) -> SealRecord:
    """Verify, order, root, flag and stamp one round of artifacts.

    `extra_flags` come from checks the caller ran on the media before sealing (perceptual
    replay), so they are stamped with the rest.

    Raises `EvidenceMissing` / `EvidenceHashMismatch` (both non-retryable) if any stored
    artifact is absent or no longer the bytes it was stored as.
    """
    if not artifacts:
        raise BadInput("a capture round needs at least one artifact", reason="evidence_empty")
    for ref in artifacts:
        if parse_object_key(ref.object_key)[0] not in (None, session_id):
            raise EvidenceKeyInvalid(f"{ref.object_key} belongs to another session")
        if not store.verify(ref):
            raise EvidenceHashMismatch(
                f"stored {ref.kind.value} {ref.object_key} no longer matches its sha256/size"
            )
    ordered = sorted(artifacts, key=lambda ref: (ref.kind.value, ref.sha256))
    flags: set[str] = set(extra_flags)
    # Claim every artifact (not just up to the first replay) so later replays of any of
    # them are caught too.
    owners = [store.claim(ref.sha256, session_id) for ref in ordered]
    if any(owner != session_id for owner in owners):
        flags.add(FLAG_REPLAYED_CAPTURE)
    if not hmac.compare_digest(
        capture.challenge_nonce.encode("utf-8"), expected_nonce.encode("utf-8")
    ):
        flags.add(FLAG_CHALLENGE_MISMATCH)
    unsigned = {
        "session_id": session_id,
        "round": round_no,
        "artifacts": [ref.model_dump(mode="json") for ref in ordered],
        "merkle_root": merkle_root([ref.sha256 for ref in ordered]),
        "stamp_key_id": signer.key_id,
        "flags": sorted(flags),
    }
    signature = signer.sign(canonical_json(unsigned))
    return SealRecord.model_validate(
        {**unsigned, "stamp_signature_b64": base64.b64encode(signature).decode("ascii")}
    )


def verify_seal(record: SealRecord | SealedEvidence, keyring: KeyRing) -> bool:
    """True if the stamp is a known key's signature over the record and the root adds up.

    Accepts the `SealedEvidence` form too (the ledger receipt beside it is not stamped).
    """
    if merkle_root([ref.sha256 for ref in record.artifacts]) != record.merkle_root:
        return False
    try:
        signature = base64.b64decode(record.stamp_signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if base64.b64encode(signature).decode("ascii") != record.stamp_signature_b64:
        return False  # only the canonical spelling: no silent variants of one stamp
    payload = canonical_json(record.model_dump(mode="json", include=set(_STAMPED_FIELDS)))
    return keyring.verify(record.stamp_key_id, signature, payload)
