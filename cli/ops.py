"""`signgate ops`: inspect sessions from their Temporal histories and replay them.

Wire it in with `app.add_typer(ops_app, name="ops")`. Every command reads only: it talks
to the Temporal frontend (SIGNGATE_TEMPORAL_ADDRESS) and the ledger file, never to the
gateway, so it works while the gateway is down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from temporalio.service import RPCError

from signgate.errors import BadInput, SigngateError
from signgate.settings import Settings, get_settings

ops_app = typer.Typer(
    no_args_is_help=True,
    help="Operate on sessions from Temporal: show, list, replay, export-history.",
)

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object")]


def _fail(err: SigngateError) -> NoReturn:
    err_console.print(f"error {err.reason}: {err.message}", markup=False, highlight=False)
    raise typer.Exit(code=2)


def _run(settings: Settings, work: Any) -> Any:
    """Connect, run `work(client)`, map every SigngateError to exit 2."""
    from signgate.payload_codec import codec_for
    from workers.client import connect_client, settle_sdk_threads

    async def main() -> Any:
        client = await connect_client(
            settings.temporal_address,
            settings.temporal_namespace,
            payload_codec=codec_for(settings),
        )
        try:
            return await work(client)
        finally:
            del client
            await settle_sdk_threads()

    try:
        return asyncio.run(main())
    except SigngateError as err:
        _fail(err)
    except RPCError as err:
        status = err.status.name if err.status is not None else "unknown"
        _fail(SigngateError(f"{status}: {err.message}", reason="temporal_rpc_failed"))


def _run_plain(coro: Coroutine[Any, Any, T]) -> T:
    from workers.client import settle_sdk_threads

    async def main() -> T:
        try:
            return await coro
        finally:
            await settle_sdk_threads()

    try:
        return asyncio.run(main())
    except SigngateError as err:
        _fail(err)


def _dt(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# --------------------------------------------------------------------------- show


@ops_app.command("show")
def show(
    session_id: str,
    as_json: JsonOption = False,
    query: Annotated[
        bool,
        typer.Option(
            help="Ask the workflow (status query); --no-query reads history and ledger only"
        ),
    ] = True,
) -> None:
    """One session: stages, checks, signals and updates, decision and ledger receipts."""
    from workers.deliveries import app_deliveries
    from workers.history import session_report

    settings = get_settings()

    async def work(client: Any) -> Any:
        report = await session_report(client, settings.ledger_path, session_id, query=query)
        return report, await app_deliveries(client, report.workflow_id)

    report, deliveries = _run(settings, work)
    if as_json:
        out = report.model_dump(mode="json")
        out["deliveries"] = [d.model_dump(mode="json") for d in deliveries]
        print(json.dumps(out))
        return

    console.print(
        f"[bold]session[/bold] {report.session_id}  workflow {report.workflow_id}  "
        f"run {report.run_id}  ({report.execution_status}, stage {report.stage}, "
        f"from {report.status_source}, {report.history_events} history events)"
    )
    attrs = ", ".join(f"{k}={v}" for k, v in report.search_attributes.items())
    console.print(f"search attributes: {attrs}")

    timeline = Table(title="timeline")
    for column in ("at", "stage", "note"):
        timeline.add_column(column)
    for event in report.timeline:
        timeline.add_row(_dt(event.at), event.stage.value, event.note)
    console.print(timeline)

    checks = Table(title="checks")
    for column in ("check", "status", "provider", "model", "risk", "latency ms", "explanations"):
        checks.add_column(column)
    for check in report.checks:
        checks.add_row(
            check.kind.value,
            check.status.value + (f" ({check.reason})" if check.reason else ""),
            check.provider,
            check.model_version,
            _num(check.risk_score),
            str(check.latency_ms),
            "; ".join(check.explanations) or "-",
        )
    console.print(checks)

    received = Table(title="signals and updates received")
    for column in ("at", "kind", "name", "detail"):
        received.add_column(column)
    rows: list[tuple[str, str, str, str]] = [
        (_dt(s.at), "signal", s.name, "") for s in report.signals
    ]
    for u in report.updates:
        detail = f"reviewer {u.reviewer_id} ({u.role})" if u.reviewer_id else ""
        if u.step_up:
            detail += " step-up"
        elif u.approve is not None:
            detail += " approve" if u.approve else " reject"
        rows.append((_dt(u.at), "update", u.name, detail.strip()))
    for row in sorted(rows):
        received.add_row(*row)
    console.print(received)

    decision = report.decision
    if decision is None:
        console.print("decision: none yet")
    else:
        policy = decision.policy
        console.print(
            f"[bold]decision[/bold] {decision.action.value} (tier {decision.tier.value}, "
            f"risk {_num(decision.risk_score)}, by {decision.decided_by})\n"
            f"  policy {policy.policy_id} v{policy.version} sha256 {policy.sha256}\n"
            f"  reasons: {', '.join(decision.reasons) or '-'}"
        )

    ledger = Table(title="ledger receipts")
    for column in ("seq", "type", "entry hash", "key", "created"):
        ledger.add_column(column)
    for entry in report.ledger:
        ledger.add_row(
            str(entry.seq), entry.entry_type, entry.entry_hash, entry.key_id, entry.created_at
        )
    console.print(ledger)

    outbound = Table(title="status events to the app")
    for column in ("event", "state", "attempts", "status", "last failure"):
        outbound.add_column(column)
    for d in deliveries:
        code = "-" if d.status_code is None else str(d.status_code)
        outbound.add_row(d.event_id, d.state, str(d.attempts), code, d.last_failure or "-")
    console.print(outbound)


# --------------------------------------------------------------------------- list


@ops_app.command("list")
def list_sessions(
    status: Annotated[str | None, typer.Option("--status", help="OnboardingStatus")] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="RiskTier")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="TenantId")] = None,
    policy_version: Annotated[
        str | None, typer.Option("--policy-version", help="PolicyVersion")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size")] = 50,
    page_token: Annotated[
        str | None, typer.Option("--page-token", help="From the previous page")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Sessions by search attributes, one page at a time, newest first within the page."""
    from workers import history

    settings = get_settings()
    query = history.visibility_query(
        status=status, tier=tier, tenant=tenant, policy_version=policy_version
    )
    page = _run(
        settings,
        lambda client: history.list_sessions(client, query, limit=limit, page_token=page_token),
    )
    if as_json:
        print(page.model_dump_json())
        return
    table = Table(title=f"sessions ({query})")
    columns = ("session_id", "status", "tier", "tenant", "policy", "execution", "started")
    for column in columns:
        table.add_column(column)
    for row in page.sessions:
        table.add_row(
            row.session_id,
            row.status or "-",
            row.risk_tier or "-",
            row.tenant_id or "-",
            row.policy_version or "-",
            row.execution_status or "-",
            _dt(row.start_time),
        )
    console.print(table)
    if page.next_page_token:
        console.print(f"next page: --page-token {page.next_page_token}", highlight=False)


# --------------------------------------------------------------------------- replay


@ops_app.command("replay")
def replay(
    sessions: Annotated[list[str] | None, typer.Argument(help="Session ids")] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="Visibility query selecting workflows")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many (--query)")] = 100,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Directory of *.json history files")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay histories against today's OnboardingWorkflow; exit 1 if any fails to replay."""
    from signgate.payload_codec import existing_codec_for
    from workers import history

    settings = get_settings()
    ids = list(sessions or [])
    if not ids and query is None and from_dir is None:
        _fail(BadInput("name sessions, --query or --from", reason="nothing_to_replay"))

    async def collect(client: Any) -> list[Any]:
        found = [await history.fetch_history(client, sid) for sid in ids]
        if query is not None:
            found += await history.histories_for_query(client, query, limit)
        return found

    histories = history.load_history_dir(from_dir) if from_dir is not None else []
    if ids or query is not None:
        histories += _run(settings, collect)
    if not histories:
        _fail(BadInput("no histories matched", reason="nothing_to_replay"))
    outcomes = _run_plain(history.replay_histories(histories, existing_codec_for(settings)))
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        print(json.dumps({"replayed": len(outcomes), "failed": [o.model_dump() for o in failed]}))
    else:
        for outcome in outcomes:
            if outcome.ok:
                console.print(f"ok      {outcome.session_id}", highlight=False)
            else:
                kind = "nondeterminism" if outcome.nondeterminism else "failure"
                console.print(
                    f"[red]FAILED[/red]  {outcome.session_id} {kind}: {outcome.failure}",
                    highlight=False,
                )
        console.print(f"{len(outcomes)} replayed, {len(failed)} failed")
    if failed:
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- export


@ops_app.command("export-history")
def export_history(
    session_id: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout)")
    ] = None,
) -> None:
    """Write the session's history JSON (the format of tests/histories/*.json).

    Name the file `<session>.json` or `onboarding-<session>.json` so `replay --from` knows
    whose history it is.
    """
    from workers import history

    settings = get_settings()
    fetched = _run(settings, lambda client: history.fetch_history(client, session_id))
    text = history.history_to_json(fetched)
    if out is None:
        print(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    err_console.print(f"wrote {out} ({len(fetched.events)} events)", highlight=False)
