"""`signgate audit export` and `signgate audit verify-bundle`: the offline audit bundle.

Mounted under `signgate audit` by `cli/main.py` (`audit_app.add_typer(bundle_app)`).
Exit codes: 0 ok, 1 the bundle does not verify (failing checks listed), 2 usage errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from signgate.errors import SigngateError
from signgate.settings import get_settings

bundle_app = typer.Typer(no_args_is_help=True, help="Offline audit bundles.")

console = Console()
err_console = Console(stderr=True)


@bundle_app.command("export")
def export(
    session_id: str,
    out: Annotated[Path, typer.Option("--out", help="Directory to write (absent or empty)")],
    include_media: Annotated[
        bool, typer.Option("--include-media", help="Also copy the sealed artifacts")
    ] = False,
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: settings)")] = None,
    keys: Annotated[Path | None, typer.Option(help="Keys dir (default: settings)")] = None,
    evidence: Annotated[
        Path | None, typer.Option(help="Evidence store dir (default: settings)")
    ] = None,
) -> None:
    """Write SESSION's audit bundle: entries, chain links, seals, attestation, public keys."""
    from signgate.audit_bundle import export_bundle
    from signgate.envelope import default_data_keys
    from signgate.evidence import EvidenceStore, LocalEvidenceStore
    from signgate.evidence_stores import open_evidence_store
    from signgate.ledger import open_ledger

    settings = get_settings()
    ledger_path = ledger or settings.ledger_path
    evidence_dir = evidence or settings.evidence_dir
    if settings.ledger == "sqlite" and not ledger_path.exists():
        _usage(f"ledger_missing: no ledger at {ledger_path}")
    local = evidence is not None or settings.evidence == "local"
    if include_media and local and not evidence_dir.is_dir():
        _usage(f"evidence_missing: no evidence store at {evidence_dir}")
    try:
        store: EvidenceStore = (
            LocalEvidenceStore(evidence, default_data_keys(settings.keys_dir))
            if evidence is not None
            else open_evidence_store(settings)
        )
        manifest = export_bundle(
            open_ledger(settings, None, sqlite_path=ledger_path),
            keys or settings.keys_dir,
            store,
            session_id,
            out,
            include_media=include_media,
        )
    except SigngateError as err:
        _usage(f"{err.reason}: {err.message}")
    console.print(f"bundle written to {escape(str(out))}: {len(manifest.files) + 1} files")


@bundle_app.command("verify-bundle")
def verify_bundle_cmd(
    path: Annotated[Path, typer.Argument(help="The bundle directory")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Check a bundle using nothing but its own files; exit 1 listing what failed."""
    from signgate.audit_bundle import verify_bundle

    if not path.is_dir():
        _usage(f"bundle_missing: {path} is not a directory")
    report = verify_bundle(path)
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        for check in report.checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
    if report.ok:
        if not as_json:
            console.print("bundle ok")
        return
    for check in report.failures:
        err_console.print(f"[red]failed[/red] {escape(check.name)}: {escape(check.detail)}")
    raise typer.Exit(code=1)


def _usage(message: str) -> NoReturn:
    err_console.print(f"[red]error[/red] {escape(message)}")
    raise typer.Exit(code=2)
