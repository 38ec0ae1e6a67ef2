"""The `signgate` command: run the embedded stack, the demo, reviews and audits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from cli.audit_bundle import bundle_app
from cli.audit_proofs import proofs_app
from cli.erasure import register as register_erasure
from cli.keys import keys_app
from cli.ops import ops_app
from cli.policy import policy_app
from cli.replay_index import register as register_replay_index
from cli.signing_keys import payload_key_app, signing_key_app
from signgate.errors import SigngateError
from signgate.settings import Settings, get_settings
from workers.client import settle_sdk_threads

app = typer.Typer(no_args_is_help=True, help=__doc__)


@app.callback()
def _setup() -> None:
    from signgate.logs import configure_logging

    settings = get_settings()
    # The demo is for reading its table: request logs only when asked for.
    quiet = "SIGNGATE_LOG_LEVEL" not in os.environ and "demo" in sys.argv[1:2]
    configure_logging(json_logs=settings.log_json, level="WARNING" if quiet else settings.log_level)


review_app = typer.Typer(no_args_is_help=True, help="Reviewer actions, through the gateway.")
audit_app = typer.Typer(no_args_is_help=True, help="Check the audit ledger.")
attest_app = typer.Typer(no_args_is_help=True, help="Check signing attestations.")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")
app.add_typer(attest_app, name="attest")
audit_app.add_typer(bundle_app)  # `signgate audit export` and `signgate audit verify-bundle`
audit_app.add_typer(proofs_app)  # checkpoint, prove, prove-consistency, check-proof
app.add_typer(ops_app, name="ops")
app.add_typer(policy_app, name="policy")
app.add_typer(signing_key_app, name="signing-key")
app.add_typer(payload_key_app, name="payload-key")
register_erasure(app)  # `signgate erase|hold|release` and `signgate retention schedule`
register_replay_index(app)  # `signgate import-replay-index`
app.add_typer(keys_app, name="keys")

console = Console()
err_console = Console(stderr=True)


def fail(err: SigngateError) -> NoReturn:
    err_console.print(f"[red]error[/red] {err.reason}: {err.message}")
    raise typer.Exit(code=2)


async def _until_interrupted(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def dev(ui: Annotated[bool, typer.Option(help="Serve the Temporal Web UI")] = True) -> None:
    """Run the embedded stack (Temporal dev server, sandbox, gateway, worker) until Ctrl-C."""
    from workers.stack import embedded_stack

    settings = get_settings()

    async def main() -> None:
        async with embedded_stack(settings, ui=ui):
            console.print(f"gateway   {settings.gateway_url}")
            console.print(f"temporal  {settings.temporal_address}")
            if ui:
                console.print(f"web ui    http://127.0.0.1:{settings.temporal_ui_port}")
            console.print(f"sandbox   {settings.resolved_vendor_url}  (test/demo vendor)")
            console.print("[dim]Ctrl-C to stop[/dim]")
            await _until_interrupted(asyncio.Event())
        await settle_sdk_threads()
        console.print("stopped cleanly")

    try:
        asyncio.run(main())
    except SigngateError as err:
        fail(err)


def _serve_until_interrupted(
    run: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    settings = get_settings()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, stop))
        waiter = asyncio.create_task(_until_interrupted(stop))
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await task
        waiter.cancel()
        await settle_sdk_threads()

    try:
        asyncio.run(main())
    except SigngateError as err:
        fail(err)


@app.command()
def worker() -> None:
    """Run one onboarding worker against SIGNGATE_TEMPORAL_ADDRESS (scale out: run more)."""
    from workers.onboarding_worker import run_worker

    _serve_until_interrupted(run_worker)


@app.command()
def gateway() -> None:
    """Run the gateway alone (the Temporal server and a worker must be running)."""
    from gateway.server import serve

    _serve_until_interrupted(lambda settings, stop: serve(settings, stop))


@app.command()
def sandbox() -> None:
    """Run the bundled vendor sandbox alone (a test and demo tool, not a vendor)."""
    from signgate.sandbox import run_sandbox

    _serve_until_interrupted(lambda settings, stop: run_sandbox(settings, stop))


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    use_running: Annotated[
        bool, typer.Option("--use-running", help="Use an already running `signgate dev`")
    ] = False,
) -> None:
    """Three sessions: bona fide (accepted), deepfake (rejected), borderline (reviewed)."""
    from cli.demo import run_demo
    from cli.demo_run import demo_settings
    from workers.stack import embedded_stack

    settings = get_settings() if use_running else demo_settings(get_settings())

    async def main() -> object:
        if use_running:
            return await run_demo(settings)
        async with embedded_stack(settings, ui=False):
            report = await run_demo(settings)
        await settle_sdk_threads()
        return report

    try:
        report = asyncio.run(main())
    except SigngateError as err:
        fail(err)
    from cli.demo import DemoReport

    assert isinstance(report, DemoReport)
    if as_json:
        print(report.model_dump_json())
    else:
        table = Table(title="signgate demo")
        for column in ("scenario", "session", "action", "ledger seq", "attestation", "reviewer"):
            table.add_column(column)
        for s in report.sessions:
            table.add_row(
                s.scenario,
                s.session_id,
                s.action,
                str(s.ledger_seq),
                "valid" if s.attestation_valid else "-",
                s.reviewed_by or "-",
            )
        console.print(table)
        console.print(f"audit ledger verified: {report.audit_verified}")
        console.print(f"checks by: {settings.check_provider}; data: {settings.var_dir}")
    if not report.audit_verified:
        raise typer.Exit(code=1)


@app.command()
def status(session_id: str) -> None:
    """Show one session's status (through the gateway, as ops)."""
    from signgate.client import GatewayClient

    settings = get_settings()

    async def main() -> str:
        async with GatewayClient(settings.gateway_url, settings.api_key_for("ops")) as client:
            return (await client.status(session_id)).model_dump_json(indent=2)

    try:
        print(asyncio.run(main()))
    except SigngateError as err:
        fail(err)


@review_app.command("list")
def review_list() -> None:
    """Sessions awaiting review, oldest SLA first."""
    from signgate.client import GatewayClient

    settings = get_settings()

    async def main() -> list[dict[str, object]]:
        key = settings.api_key_for("reviewer")
        async with GatewayClient(settings.gateway_url, key) as client:
            return await client.review_queue()

    try:
        rows = asyncio.run(main())
    except SigngateError as err:
        fail(err)
    table = Table(title="review queue")
    for column in ("session_id", "status", "risk_tier", "tenant_id", "start_time"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                str(row.get(c, ""))
                for c in ("session_id", "status", "risk_tier", "tenant_id", "start_time")
            )
        )
    console.print(table)


def _review(session_id: str, verdict: bool | None, reason: str, api_key: str | None) -> None:
    """`verdict`: approve (True), reject (False) or request a step-up (None)."""
    from signgate.client import GatewayClient

    settings = get_settings()

    async def main() -> str:
        key = api_key or settings.api_key_for("reviewer")
        async with GatewayClient(settings.gateway_url, key) as client:
            if verdict is None:
                outcome = await client.request_step_up(session_id, reason)
            else:
                outcome = await client.review(session_id, verdict, reason)
            return outcome.model_dump_json()

    try:
        print(asyncio.run(main()))
    except SigngateError as err:
        fail(err)


ApiKeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="SIGNGATE_REVIEWER_KEY", help="Reviewer key")
]


@review_app.command("approve")
def review_approve(
    session_id: str, reason: Annotated[str, typer.Option()], api_key: ApiKeyOption = None
) -> None:
    """Approve a session awaiting review (a reason is mandatory)."""
    _review(session_id, True, reason, api_key)


@review_app.command("reject")
def review_reject(
    session_id: str, reason: Annotated[str, typer.Option()], api_key: ApiKeyOption = None
) -> None:
    """Reject a session awaiting review (a reason is mandatory)."""
    _review(session_id, False, reason, api_key)


@review_app.command("step-up")
def review_step_up(
    session_id: str, reason: Annotated[str, typer.Option()], api_key: ApiKeyOption = None
) -> None:
    """Ask for a fresh capture instead of a verdict (once per session; a reason is mandatory)."""
    _review(session_id, None, reason, api_key)


@audit_app.command("verify")
def audit_verify(
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: settings)")] = None,
    keys: Annotated[Path | None, typer.Option(help="Public keys dir (default: settings)")] = None,
) -> None:
    """Recompute every hash, link and signature; exit non-zero at the first bad entry."""
    from signgate.ledger import open_ledger
    from signgate.signer import KeyRing

    settings = get_settings()
    path = ledger or settings.ledger_path
    where = str(path)
    if settings.ledger == "postgres":
        where = f"postgres schema {settings.ledger_schema}"
    elif not path.exists():
        err_console.print(f"[red]error[/red] ledger_missing: no ledger at {where}")
        raise typer.Exit(code=2)
    try:
        verifying = open_ledger(settings, None, sqlite_path=ledger)
        report = verifying.verify(KeyRing.from_dir(keys or settings.keys_dir))
    except SigngateError as err:  # e.g. the database cannot be reached
        fail(err)
    if report.reason == "ledger_missing":
        err_console.print(f"[red]error[/red] ledger_missing: no ledger at {where}")
        raise typer.Exit(code=2)
    if report.ok:
        console.print(f"ledger ok: {report.entries_checked} entries verified ({where})")
        return
    err_console.print(
        f"[red]ledger broken[/red] at seq {report.first_bad_seq}: {report.reason} ({where})"
    )
    raise typer.Exit(code=1)


@attest_app.command("verify")
def attest_verify(
    token: str,
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: settings)")] = None,
    keys: Annotated[Path | None, typer.Option(help="Public keys dir (default: settings)")] = None,
) -> None:
    """Exit 0 only if the signature is valid and the named ledger entry has that hash."""
    from signgate.ledger import open_ledger
    from signgate.signer import KeyRing
    from signgate.verification import verify_attestation_with_ledger

    settings = get_settings()
    try:
        claims = verify_attestation_with_ledger(
            token.strip(),
            KeyRing.from_dir(keys or settings.keys_dir),
            open_ledger(settings, None, sqlite_path=ledger),
        )
    except SigngateError as err:
        err_console.print(f"[red]invalid[/red] {err.reason}: {err.message}")
        raise typer.Exit(code=1) from err
    print(json.dumps(claims.model_dump(mode="json"), indent=2))


attacks_app = typer.Typer(no_args_is_help=True, help="Build labelled attack samples.")
app.add_typer(attacks_app, name="attacks")


@attacks_app.command("bona-fide")
def attacks_bona_fide(out: Annotated[Path, typer.Option("--out")]) -> None:
    """Write the packaged public-domain bona fide photos (nothing is downloaded)."""
    from signgate.evaluation.dataset import packaged_bona_fide

    console.print(f"{len(packaged_bona_fide(out))} bona fide images in {out}")


@attacks_app.command("generate")
def attacks_generate(
    source: Annotated[Path, typer.Option("--from", help="Directory of bona fide images")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory to write")],
    seed: int = 0,
) -> None:
    """Build every attack species from each bona fide image (a labelled dataset)."""
    from signgate.evaluation.dataset import generate

    counts = generate(source, out, seed)
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("eval")
def evaluate_dataset(
    dataset: Path,
    report: Annotated[Path | None, typer.Option(help="Write the markdown table here")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a DET plot PNG here")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """APCER per species, BPCER, ACER, BPCER@APCER 5%/1% and latency per detector."""
    from signgate.evaluation.harness import det_plot_png, evaluate, to_markdown

    result = evaluate(dataset)
    table = to_markdown(result)
    if report:
        report.write_text(table)
    if plot:
        det_plot_png(result, plot)
    print(result.model_dump_json(indent=2) if as_json else table)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
