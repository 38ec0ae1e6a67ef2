"""`signgate policy`: how each policy version performs, from the audit ledger.

Wire it in with `app.add_typer(policy_app, name="policy")`. Reads the ledger file only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from signgate.errors import SigngateError
from signgate.ledger import open_ledger
from signgate.policy_report import OUTCOMES, PolicyReport, policy_report
from signgate.settings import get_settings

policy_app = typer.Typer(no_args_is_help=True, help="Policy versions: how they decide.")

console = Console()
err_console = Console(stderr=True)


@policy_app.callback()
def _group() -> None:
    """Policy versions: how they decide."""


@policy_app.command("report")
def report(
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: settings)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Per policy version: decisions, automated actions, review and overturn rates,
    recommendation vs outcome, median time to decision."""
    try:
        result = policy_report(open_ledger(get_settings(), None, sqlite_path=ledger))
    except SigngateError as err:
        err_console.print(f"error {err.reason}: {err.message}", markup=False, highlight=False)
        raise typer.Exit(code=2) from err
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    _print(result)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _print(result: PolicyReport) -> None:
    if not result.policies:
        console.print("no decisions in the ledger")
        return
    table = Table(title=f"policy versions ({result.decisions} decisions)")
    for column in (
        "policy",
        "version",
        "sha256",
        "decisions",
        "enforce/shadow",
        "auto accept",
        "auto reject",
        "review rate",
        "overturn rate",
        "median to decision",
    ):
        table.add_column(column)
    for row in result.policies:
        table.add_row(
            row.policy_id,
            row.version,
            row.sha256[:12],
            str(row.decisions),
            f"{row.modes.get('enforce', 0)}/{row.modes.get('shadow', 0)}",
            str(row.automated.get("accept", 0)),
            str(row.automated.get("reject", 0)),
            f"{_rate(row.review_rate)} ({row.sent_to_review})",
            f"{_rate(row.overturn_rate)} ({row.reviewer_approved}/"
            f"{row.reviewer_approved + row.reviewer_rejected})",
            _seconds(row.median_time_to_decision_s),
        )
    console.print(table)
    for row in result.policies:
        matrix = Table(title=f"{row.policy_id} {row.version}: recommendation vs final")
        matrix.add_column("recommended")
        for outcome in OUTCOMES:
            matrix.add_column(f"final {outcome}")
        for recommendation, cells in row.confusion.items():
            matrix.add_row(recommendation, *(str(cells.get(o, 0)) for o in OUTCOMES))
        console.print(matrix)
    if result.skipped:
        console.print(f"[yellow]{result.skipped} decision entries could not be read[/yellow]")
