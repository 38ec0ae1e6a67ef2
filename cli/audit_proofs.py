"""`signgate audit checkpoint|prove|prove-consistency|check-proof|mirror-checkpoints`.

Mounted under `signgate audit` by `cli/main.py` (`audit_app.add_typer(proofs_app)`).
`check-proof` reads only the proof file and the public key(s) it is given: no ledger,
no settings. Exit codes: 0 ok, 1 the proof does not verify (reason printed), 2 usage
errors or a proof that cannot be made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from signgate.errors import SigngateError
from signgate.settings import get_settings

proofs_app = typer.Typer(no_args_is_help=True, help="Signed checkpoints and Merkle proofs.")

console = Console()
err_console = Console(stderr=True)

LedgerOption = Annotated[
    Path | None, typer.Option(help="SQLite ledger file (default: settings; not for postgres)")
]


def _fail(err: SigngateError, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error[/red] {err.reason}: {escape(err.message)}")
    raise typer.Exit(code=code)


def _emit(document: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(document + "\n")
        return
    out.write_text(document + "\n", encoding="utf-8")
    err_console.print(f"proof written to {escape(str(out))}")


@proofs_app.command("checkpoint")
def checkpoint(ledger: LedgerOption = None) -> None:
    """Append a signed checkpoint over every entry so far (besides the automatic ones)."""
    from signgate.ledger_signer import open_signing_ledger

    settings = get_settings()
    try:
        writer, _ = open_signing_ledger(settings, sqlite_path=ledger)
        receipt = writer.checkpoint()
    except SigngateError as err:
        _fail(err)
    if receipt is None:
        console.print("ledger is empty: nothing to checkpoint")
        return
    console.print(f"checkpoint at seq {receipt.seq} covers entries 1..{receipt.seq - 1}")


@proofs_app.command("prove")
def prove(
    seq: int,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof here")] = None,
    ledger: LedgerOption = None,
) -> None:
    """Inclusion proof of entry SEQ against the latest checkpoint, as JSON."""
    from signgate.audit_proofs import prove_inclusion
    from signgate.ledger import open_ledger

    try:
        proof = prove_inclusion(open_ledger(get_settings(), None, sqlite_path=ledger), seq)
    except SigngateError as err:
        _fail(err)
    _emit(json.dumps(proof.model_dump(mode="json"), indent=2), out)


@proofs_app.command("prove-consistency")
def prove_consistency(
    old: Annotated[int, typer.Argument(help="Tree size of the older checkpoint")],
    new: Annotated[int, typer.Argument(help="Tree size of the newer checkpoint")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof here")] = None,
    ledger: LedgerOption = None,
) -> None:
    """Consistency proof between the checkpoints of tree sizes OLD and NEW, as JSON."""
    from signgate.audit_proofs import prove_consistency as make_proof
    from signgate.ledger import open_ledger

    try:
        proof = make_proof(open_ledger(get_settings(), None, sqlite_path=ledger), old, new)
    except SigngateError as err:
        _fail(err)
    _emit(json.dumps(proof.model_dump(mode="json"), indent=2), out)


@proofs_app.command("check-proof")
def check_proof_cmd(
    proof_file: Annotated[Path, typer.Argument(help="A proof from `prove` or `prove-consistency`")],
    public_key: Annotated[
        list[Path], typer.Option("--public-key", help="Trusted Ed25519 public key PEM (repeatable)")
    ],
) -> None:
    """Verify a proof with nothing but the public key(s); exit 1 with a reason if bad."""
    from signgate.audit_proofs import ProofInvalid, check_proof
    from signgate.signer import KeyRing

    try:
        keyring = KeyRing.from_pems(path.read_bytes() for path in public_key)
        document = json.loads(proof_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        err_console.print(f"[red]error[/red] unreadable input: {escape(str(err))}")
        raise typer.Exit(code=2) from err
    except SigngateError as err:
        _fail(err)
    try:
        summary = check_proof(document, keyring)
    except ProofInvalid as err:
        _fail(err, code=1)
    console.print(f"proof ok: {escape(summary)}")


@proofs_app.command("mirror-checkpoints")
def mirror_checkpoints_cmd(
    directory: Annotated[
        Path | None, typer.Argument(help="Where the write-once copies go (or --s3)")
    ] = None,
    s3: Annotated[
        bool, typer.Option("--s3", help="Mirror to the settings' S3 bucket (Object Lock)")
    ] = False,
    ledger: LedgerOption = None,
) -> None:
    """Copy every signed checkpoint the mirror lacks; exit 1 if a copy disagrees."""
    from signgate.checkpoint_mirror import (
        CheckpointFork,
        CheckpointMirror,
        DirectoryMirror,
        mirror_checkpoints,
    )
    from signgate.checkpoint_mirror_s3 import S3CheckpointMirror
    from signgate.ledger import open_ledger

    if (directory is None) == (not s3):
        err_console.print("[red]error[/red] give either a DIRECTORY or --s3")
        raise typer.Exit(code=2)
    settings = get_settings()
    try:
        mirror: CheckpointMirror
        if directory is not None:
            mirror, where = DirectoryMirror(directory), str(directory)
        else:
            mirror, where = S3CheckpointMirror.from_settings(settings), f"s3://{settings.s3_bucket}"
        written = mirror_checkpoints(open_ledger(settings, None, sqlite_path=ledger), mirror)
    except CheckpointFork as err:
        _fail(err, code=1)
    except SigngateError as err:
        _fail(err)
    console.print(f"{written} checkpoints written to {escape(where)}")
