"""Copies of the signed checkpoints outside the ledger, write-once.

A checkpoint kept only inside the ledger protects against nobody who can rewrite the
ledger. Mirrored to a place the ledger's writers cannot change (a directory on another
volume, an object store under Object Lock), it pins the ledger: any later rewrite of an
entry it covers, or truncation below it, contradicts a tree head signed earlier.

The store behind it is a two-method protocol, so an object store can stand in for the
directory without this module knowing it. `mirror_checkpoints` is idempotent (run it
after appends, from cron, or from a Temporal schedule): it writes what is missing and
refuses (`checkpoint_fork`) when a copy already there disagrees with the ledger, which
means the ledger, or the mirror, was rewritten.

`signgate.checkpoint_mirror_s3.S3CheckpointMirror` keeps them in the evidence bucket
under Object Lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from signgate.canonical import canonical_json
from signgate.checkpoints import CHECKPOINT_DOC_KIND, CHECKPOINT_SESSION, parse_tree_head
from signgate.errors import SigngateError
from signgate.ledger import Ledger
from signgate.signer import write_once


class CheckpointFork(SigngateError):
    reason = "checkpoint_fork"
    http_status = 409


class CheckpointMirror(Protocol):
    def read(self, name: str) -> bytes | None: ...

    def write_once(self, name: str, data: bytes) -> bool:
        """Create `name` with `data`; False (and nothing written) if it already exists."""
        ...


class DirectoryMirror:
    """Checkpoint copies as files; each created atomically and never overwritten."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def read(self, name: str) -> bytes | None:
        path = self._dir / name
        return path.read_bytes() if path.is_file() else None

    def write_once(self, name: str, data: bytes) -> bool:
        self._dir.mkdir(parents=True, exist_ok=True)
        return write_once(self._dir / name, data, mode=0o444)


def checkpoint_name(tree_size: int) -> str:
    return f"checkpoint-{tree_size:012d}.json"


def mirror_checkpoints(ledger: Ledger, mirror: CheckpointMirror) -> int:
    """Write every checkpoint the mirror lacks; the number written. Checks the others."""
    written = 0
    for entry in ledger.entries(CHECKPOINT_SESSION):
        sth = parse_tree_head(entry.body)
        if sth is None:
            raise CheckpointFork(f"checkpoint entry {entry.seq} is malformed")
        document = canonical_json(
            {"kind": CHECKPOINT_DOC_KIND, "ledger_seq": entry.seq, "checkpoint": sth}
        )
        name = checkpoint_name(sth.tree_size)
        if mirror.write_once(name, document):
            written += 1
        elif mirror.read(name) != document:
            raise CheckpointFork(
                f"mirrored {name} differs from the ledger's checkpoint at seq {entry.seq}"
            )
    return written
