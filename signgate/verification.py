"""Checks an outsider can run: an attestation is only good if the ledger backs it."""

from __future__ import annotations

from signgate.attestation import AttestationInvalid, verify_attestation
from signgate.ledger import Ledger
from signgate.models import AttestationClaims
from signgate.signer import KeyRing


def verify_attestation_with_ledger(
    token: str, keyring: KeyRing, ledger: Ledger, now: int | None = None
) -> AttestationClaims:
    """Valid signature AND the named ledger entry exists with that hash, as a decision."""
    claims = verify_attestation(token, keyring, now=now)
    entry = ledger.get(claims.ledger_seq)
    if entry is None or entry.entry_hash != claims.ledger_entry_hash:
        raise AttestationInvalid(
            f"ledger has no entry {claims.ledger_seq} with hash {claims.ledger_entry_hash[:12]}",
            reason="attestation_ledger_mismatch",
        )
    if entry.entry_type != "decision" or entry.session_id != claims.sid:
        raise AttestationInvalid(
            f"ledger entry {claims.ledger_seq} is not this session's decision",
            reason="attestation_ledger_mismatch",
        )
    return claims
