"""The key a process appends to the ledger with: the active one, never a stand-in.

Every ledger entry names the key that signed it, and `audit verify` needs that key's public
half. A keys directory that was lost, or replaced by an empty or wrong one, used to be met
by minting a first key as on a fresh install: the processes started as usual, new entries
chained on under the new key, and every earlier entry read `unknown_key` from then on,
found out at the next audit. The ledger, which is kept apart from the keys (its own file,
or PostgreSQL), is the witness: if its newest entry was signed by a key whose public half
is not in the keys directory, a writer refuses to start (`signing_key_missing`).
"""

from __future__ import annotations

from pathlib import Path

from signgate.ledger import Ledger, LedgerMissing, open_ledger
from signgate.models import LedgerReceipt
from signgate.settings import Settings
from signgate.signer import KeyRing, Signer, SigningKeyMissing


def newest_receipt(settings: Settings, *, sqlite_path: Path | None = None) -> LedgerReceipt | None:
    """The ledger's newest entry, or None where no ledger has been written yet."""
    reader = open_ledger(settings, None, sqlite_path=sqlite_path)
    try:
        return reader.head()
    except LedgerMissing:
        return None
    finally:
        reader.close()


def ledger_signer(settings: Settings, *, sqlite_path: Path | None = None) -> Signer:
    """The active signing key, once the ledger's newest entry is known to be verifiable
    with the keys here. Checked before any key is loaded, so a refusal mints nothing."""
    head = newest_receipt(settings, sqlite_path=sqlite_path)
    if head is not None and head.key_id not in KeyRing.from_dir(settings.keys_dir):
        raise SigningKeyMissing(
            f"the ledger's newest entry (seq {head.seq}) was signed by key {head.key_id}, "
            f"which is not in {settings.keys_dir}: restore the keys directory from a backup "
            "(a new key would leave every earlier entry unverifiable)"
        )
    return Signer.load_active(settings.keys_dir)


def open_signing_ledger(
    settings: Settings, *, sqlite_path: Path | None = None
) -> tuple[Ledger, Signer]:
    """The ledger opened for appends, and the signer it appends with (`ledger_signer`)."""
    signer = ledger_signer(settings, sqlite_path=sqlite_path)
    return open_ledger(settings, signer, sqlite_path=sqlite_path), signer
