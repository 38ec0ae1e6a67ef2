"""`signgate erase`, `signgate hold`, `signgate release`: crypto-shredding and legal holds.

They act on this machine's ledger and data keys (settings), like `signgate audit verify`.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from signgate.errors import SigngateError
from signgate.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from signgate.erasure import Erasure
    from signgate.models import LedgerReceipt

    Operation = Callable[[str, str, str], LedgerReceipt]  # (session_id, by, reason)

console = Console()
err_console = Console(stderr=True)

By = Annotated[str | None, typer.Option("--by", help="Who asks (default: the OS user)")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger)")]
Session = Annotated[str, typer.Argument(help="The session id")]


def _erasure() -> Erasure:
    from signgate.envelope import default_data_keys
    from signgate.erasure import Erasure
    from signgate.ledger_signer import open_signing_ledger

    settings = get_settings()
    ledger, _ = open_signing_ledger(settings)
    return Erasure(ledger, default_data_keys(settings.keys_dir))


def _fail(err: SigngateError) -> NoReturn:
    err_console.print(f"[red]error[/red] {err.reason}: {err.message}")
    raise typer.Exit(code=2)


def _act(
    operation: Callable[[Erasure], Operation], session_id: str, reason: str, by: str | None
) -> LedgerReceipt:
    """Run one ledgered act (`operation` picks it) as `by`, else the OS user; refusals exit 2."""
    try:
        return operation(_erasure())(session_id, by or getpass.getuser(), reason)
    except SigngateError as err:
        _fail(err)


def erase(session_id: Session, reason: Reason, by: By = None) -> None:
    """Destroy SESSION's data key: its media become unreadable; hashes and ledger stay."""
    receipt = _act(lambda erasure: erasure.erase, session_id, reason, by)
    console.print(f"erased {session_id}: ledger seq {receipt.seq} ({receipt.entry_type})")


def hold(session_id: Session, reason: Reason = "legal hold", by: By = None) -> None:
    """Put SESSION on legal hold: erasure (by hand or by retention) is refused until release."""
    receipt = _act(lambda erasure: erasure.hold, session_id, reason, by)
    console.print(f"held {session_id}: ledger seq {receipt.seq}")


def release(session_id: Session, reason: Reason = "legal hold lifted", by: By = None) -> None:
    """Lift SESSION's legal hold."""
    receipt = _act(lambda erasure: erasure.release, session_id, reason, by)
    console.print(f"released {session_id}: ledger seq {receipt.seq}")


retention_app = typer.Typer(no_args_is_help=True, help="The retention sweep.")


@retention_app.command("schedule")
def retention_schedule() -> None:
    """Create the daily retention-sweep Temporal Schedule (idempotent)."""
    import asyncio

    from workers.client import connect_client, settle_sdk_threads
    from workers.retention_schedule import ensure_retention_schedule

    settings = get_settings()

    async def main() -> str:
        client = await connect_client(settings.temporal_address, settings.temporal_namespace)
        schedule_id = await ensure_retention_schedule(client, settings)
        await settle_sdk_threads()
        return schedule_id

    try:
        schedule_id = asyncio.run(main())
    except SigngateError as err:
        _fail(err)
    console.print(f"schedule {schedule_id} is in place")


def register(app: typer.Typer) -> None:
    """`signgate erase|hold|release SESSION` and `signgate retention schedule`."""
    for command in (erase, hold, release):
        app.command()(command)
    app.add_typer(retention_app, name="retention")
