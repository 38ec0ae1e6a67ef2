"""`signgate import-replay-index`: bring a host's SQLite replay index into PostgreSQL.

Before the perceptual replay index moved beside the PostgreSQL ledger, each worker host
kept its own in `var/ledger.sqlite3`. Run this once on each such host after upgrading, so
captures sealed there before the upgrade are still found as replays from every host. It
copies; the SQLite file is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from signgate.errors import BadInput, SigngateError
from signgate.settings import get_settings

console = Console()
err_console = Console(stderr=True)


def import_replay_index(
    source: Annotated[
        Path | None,
        typer.Option("--from", help="The SQLite file (default: this host's var/ledger.sqlite3)"),
    ] = None,
) -> None:
    """Copy this host's SQLite replay index into the PostgreSQL one (rows there stay)."""
    from signgate.detectors.replay import SqlitePerceptualIndex, open_perceptual_index
    from signgate.detectors.replay_postgres import PostgresPerceptualIndex

    settings = get_settings()
    path = source or settings.ledger_path
    try:
        if settings.ledger != "postgres":
            raise BadInput(
                "SIGNGATE_LEDGER is not postgres: the index is already this SQLite file",
                reason="bad_input",
            )
        if not path.is_file():
            raise BadInput(f"no SQLite file at {path}", reason="bad_input")
        target = open_perceptual_index(settings)
        assert isinstance(target, PostgresPerceptualIndex)
        try:
            added = target.import_from(SqlitePerceptualIndex(path))
        finally:
            target.close()
    except SigngateError as err:
        err_console.print(f"[red]error[/red] {err.reason}: {err.message}")
        raise typer.Exit(code=2) from err
    console.print(f"{added} new rows copied from {path} into {settings.ledger_schema}")


def register(app: typer.Typer) -> None:
    app.command("import-replay-index")(import_replay_index)
