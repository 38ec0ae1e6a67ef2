"""Operating on onboarding workflows from their Temporal histories: fetch, list, replay.

What `signgate ops` stands on. Everything here reads; nothing signals, updates or
terminates a workflow. A history file is what `WorkflowHistory.to_json()` writes (the
golden files under `tests/histories/` too); its workflow id is not in the JSON, so it is
taken from the file name: `onboarding-<session>.json` or `<session>.json`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from signgate.errors import BadInput, SigngateError
from signgate.ledger import LedgerMissing, open_ledger
from signgate.models import (
    CheckResult,
    Decision,
    LedgerEntry,
    OnboardingResult,
    OnboardingStatus,
    ReviewInput,
    Stage,
    TimelineEvent,
)
from signgate.settings import get_settings
from workers.client import data_converter, decode_payloads
from workflows.onboarding import OnboardingWorkflow
from workflows.search_attributes import ONBOARDING_STATUS, POLICY_VERSION, RISK_TIER, TENANT_ID

WORKFLOW_TYPE = "OnboardingWorkflow"
WORKFLOW_ID_PREFIX = "onboarding-"
# A closed workflow answers a query only through a worker replaying it: without a worker
# polling the task queue the query waits, so it is bounded and the ledger fills in.
STATUS_QUERY_TIMEOUT = timedelta(seconds=5)


class SessionNotFound(SigngateError):
    reason = "session_not_found"
    http_status = 404


class HistoryFileInvalid(BadInput):
    reason = "history_file_invalid"


class VisibilityQueryFailed(SigngateError):
    reason = "visibility_query_failed"
    http_status = 400


def workflow_id(session_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{session_id}"


def session_of(workflow_id: str) -> str:
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


# --------------------------------------------------------------------------- history


async def fetch_history(client: Client, session_id: str) -> WorkflowHistory:
    """The full history of the session's latest run; `session_not_found` if none."""
    handle = client.get_workflow_handle(workflow_id(session_id))
    try:
        return await handle.fetch_history()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise SessionNotFound(f"no onboarding workflow for session {session_id}") from err
        raise


def history_to_json(history: WorkflowHistory) -> str:
    """The file format of `tests/histories/*.json` (the workflow id is the file name)."""
    return history.to_json()


def load_history_file(path: Path) -> WorkflowHistory:
    try:
        text = path.read_text()
        return WorkflowHistory.from_json(workflow_id(session_of(path.stem)), text)
    except (OSError, ValueError) as err:
        raise HistoryFileInvalid(f"{path}: not a workflow history ({err})") from err


def load_history_dir(directory: Path) -> list[WorkflowHistory]:
    if not directory.is_dir():
        raise HistoryFileInvalid(f"{directory} is not a directory")
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise HistoryFileInvalid(f"no *.json history files in {directory}")
    return [load_history_file(p) for p in paths]


class SignalSeen(BaseModel):
    name: str
    at: datetime


class UpdateSeen(BaseModel):
    name: str
    at: datetime
    update_id: str
    reviewer_id: str | None = None
    role: str | None = None
    approve: bool | None = None
    step_up: bool = False
    completed: bool = False


class HistoryFacts(BaseModel):
    """What the event list says about a session, without asking the workflow."""

    events: int
    started_at: datetime | None = None
    closed: str | None = None  # completed, failed, terminated, ... or None while running
    stages: list[TimelineEvent] = []
    signals: list[SignalSeen] = []
    updates: list[UpdateSeen] = []
    result: OnboardingResult | None = None


_CLOSING = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


async def _decoded(converter: DataConverter, payloads: Payloads, kind: type) -> Any:
    try:
        return await decode_payloads(converter, payloads, kind)
    except Exception:  # noqa: BLE001 - an undecodable payload is shown as absent
        return None


async def history_facts(
    history: WorkflowHistory, converter: DataConverter | None = None
) -> HistoryFacts:
    """`converter` (a client's, with its codec) decrypts encrypted payloads; without one
    they show as absent."""
    converter = converter or data_converter(None)
    facts = HistoryFacts(events=len(history.events))
    updates: dict[str, UpdateSeen] = {}
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            facts.started_at = at
            # The gateway starts a session with its status already set: the first stage.
            fields = event.workflow_execution_started_event_attributes.search_attributes
            await _add_stage(facts, converter, fields, at)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            facts.signals.append(SignalSeen(name=name, at=at))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            seen = UpdateSeen(name=request.input.name, at=at, update_id=request.meta.update_id)
            review = (
                await _decoded(converter, request.input.args, ReviewInput)
                if request.input.name
                else None
            )
            if isinstance(review, ReviewInput):
                seen.reviewer_id = review.reviewer_id
                seen.role = review.role.value
                seen.approve = review.approve
                seen.step_up = review.step_up
            updates[seen.update_id] = seen
            facts.updates.append(seen)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            meta = event.workflow_execution_update_completed_event_attributes.meta
            if meta.update_id in updates:
                updates[meta.update_id].completed = True
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            await _add_stage(facts, converter, fields, at)
        elif kind in _CLOSING:
            facts.closed = _CLOSING[kind]
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                attrs = event.workflow_execution_completed_event_attributes
                result = await _decoded(converter, attrs.result, OnboardingResult)
                if isinstance(result, OnboardingResult):
                    facts.result = result
    return facts


async def _add_stage(
    facts: HistoryFacts, converter: DataConverter, fields: SearchAttributes, at: datetime
) -> None:
    """The OnboardingStatus these search attributes set, if any, as a stage at `at`."""
    payload = fields.indexed_fields.get(ONBOARDING_STATUS.name)
    if payload is None:
        return
    stage = await _decoded(converter, Payloads(payloads=[payload]), str)
    if isinstance(stage, str) and stage in Stage.__members__:
        facts.stages.append(TimelineEvent(at=at, stage=Stage(stage)))


# --------------------------------------------------------------------------- show


class LedgerReceiptRow(BaseModel):
    seq: int
    entry_type: str
    entry_hash: str
    key_id: str
    created_at: str


class SessionReport(BaseModel):
    """`signgate ops show`: one session, from Temporal and the ledger."""

    session_id: str
    workflow_id: str
    run_id: str | None
    execution_status: str | None
    search_attributes: dict[str, str | None]
    status_source: str  # "query" (the workflow answered) or "history+ledger"
    stage: str | None
    timeline: list[TimelineEvent]
    checks: list[CheckResult]
    decision: Decision | None
    signals: list[SignalSeen]
    updates: list[UpdateSeen]
    ledger: list[LedgerReceiptRow]
    history_events: int


async def session_report(
    client: Client, ledger_path: Path, session_id: str, *, query: bool = True
) -> SessionReport:
    """With `query`, stages, checks and decision come from the workflow's `status` query
    (a closed workflow answers too, through a worker); without it, or when no worker
    answers in time, from the history's status upserts and the session's ledger entries."""
    handle = client.get_workflow_handle(workflow_id(session_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise SessionNotFound(f"no onboarding workflow for session {session_id}") from err
        raise
    history = await fetch_history(client, session_id)
    facts = await history_facts(history, client.data_converter)
    entries = _ledger_entries(ledger_path, session_id)

    status: OnboardingStatus | None = None
    if query:
        try:
            status = await handle.query(OnboardingWorkflow.status, rpc_timeout=STATUS_QUERY_TIMEOUT)
        except Exception:  # noqa: BLE001 - no worker in time, or a failed query
            status = None

    attributes = description.typed_search_attributes
    stage: str | None
    if status is not None:
        source, stage = "query", status.stage.value
        timeline, checks, decision = list(status.timeline), list(status.checks), status.decision
    else:
        source = "history+ledger"
        stage = facts.stages[-1].stage.value if facts.stages else None
        timeline = facts.stages
        checks = _checks_from_ledger(entries)
        decision = facts.result.decision if facts.result else _decision_from_ledger(entries)
    return SessionReport(
        session_id=session_id,
        workflow_id=handle.id,
        run_id=description.run_id,
        execution_status=description.status.name.lower() if description.status else None,
        search_attributes={
            key.name: attributes.get(key)
            for key in (ONBOARDING_STATUS, RISK_TIER, TENANT_ID, POLICY_VERSION)
        },
        status_source=source,
        stage=stage,
        timeline=timeline,
        checks=checks,
        decision=decision,
        signals=facts.signals,
        updates=facts.updates,
        ledger=[
            LedgerReceiptRow(
                seq=e.seq,
                entry_type=e.entry_type,
                entry_hash=e.entry_hash,
                key_id=e.key_id,
                created_at=e.created_at,
            )
            for e in entries
        ],
        history_events=facts.events,
    )


def _ledger_entries(ledger_path: Path, session_id: str) -> list[LedgerEntry]:
    try:
        return open_ledger(get_settings(), None, sqlite_path=ledger_path).entries(session_id)
    except LedgerMissing:
        return []


def _checks_from_ledger(entries: Sequence[LedgerEntry]) -> list[CheckResult]:
    rounds = [e for e in entries if e.entry_type == "checks_completed"]
    if not rounds:
        return []
    return [CheckResult.model_validate(c) for c in rounds[-1].body.get("checks", [])]


def _decision_from_ledger(entries: Sequence[LedgerEntry]) -> Decision | None:
    for entry in reversed(entries):
        if entry.entry_type == "decision" and "decision" in entry.body:
            return Decision.model_validate(entry.body["decision"])
    return None


# --------------------------------------------------------------------------- list


class SessionRow(BaseModel):
    session_id: str
    status: str | None
    risk_tier: str | None
    tenant_id: str | None
    policy_version: str | None
    execution_status: str | None
    start_time: datetime
    close_time: datetime | None


class SessionPage(BaseModel):
    sessions: list[SessionRow]
    next_page_token: str | None
    query: str


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_query(
    *,
    status: str | None = None,
    tier: str | None = None,
    tenant: str | None = None,
    policy_version: str | None = None,
) -> str:
    """The list filter; no ORDER BY: the dev server's SQLite visibility refuses it."""
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    for key, value in (
        (ONBOARDING_STATUS, status),
        (RISK_TIER, tier),
        (TENANT_ID, tenant),
        (POLICY_VERSION, policy_version),
    ):
        if value is not None:
            clauses.append(f"{key.name} = {_quoted(value)}")
    return " AND ".join(clauses)


def encode_page_token(token: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(token).decode("ascii") if token else None


def decode_page_token(token: str | None) -> bytes | None:
    if not token:
        return None
    refused = BadInput("not a page token from `signgate ops list`", reason="bad_page_token")
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as err:
        raise refused from err
    if not raw:
        raise refused
    return raw


async def list_sessions(
    client: Client, query: str, *, limit: int = 50, page_token: str | None = None
) -> SessionPage:
    """One page of sessions, newest first within the page (sorted here, see above)."""
    iterator = client.list_workflows(
        query, page_size=limit, next_page_token=decode_page_token(page_token)
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        if err.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.UNIMPLEMENTED):
            raise VisibilityQueryFailed(f"{query}: {err.message}") from err
        raise
    rows = [_row(execution) for execution in iterator.current_page or []]
    rows.sort(key=lambda row: row.start_time, reverse=True)
    return SessionPage(
        sessions=rows, next_page_token=encode_page_token(iterator.next_page_token), query=query
    )


def _row(execution: WorkflowExecution) -> SessionRow:
    attributes = execution.typed_search_attributes
    return SessionRow(
        session_id=session_of(execution.id),
        status=attributes.get(ONBOARDING_STATUS),
        risk_tier=attributes.get(RISK_TIER),
        tenant_id=attributes.get(TENANT_ID),
        policy_version=attributes.get(POLICY_VERSION),
        execution_status=execution.status.name.lower() if execution.status else None,
        start_time=execution.start_time,
        close_time=execution.close_time,
    )


async def histories_for_query(client: Client, query: str, limit: int) -> list[WorkflowHistory]:
    histories: list[WorkflowHistory] = []
    try:
        async for history in client.list_workflows(query, limit=limit).map_histories():
            histories.append(history)
    except RPCError as err:
        if err.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.UNIMPLEMENTED):
            raise VisibilityQueryFailed(f"{query}: {err.message}") from err
        raise
    return histories


# --------------------------------------------------------------------------- replay


class ReplayOutcome(BaseModel):
    session_id: str
    workflow_id: str
    ok: bool
    failure: str | None = None
    nondeterminism: bool = False


_REPLAY_RUNTIME: Runtime | None = None


def _replay_runtime() -> Runtime:
    """A runtime without Core's console log: Core writes its nondeterminism warning to
    stdout, which would corrupt `--json` output; each failure is reported by us instead."""
    global _REPLAY_RUNTIME
    if _REPLAY_RUNTIME is None:
        _REPLAY_RUNTIME = Runtime(
            telemetry=TelemetryConfig(logging=None), worker_heartbeat_interval=None
        )
    return _REPLAY_RUNTIME


def replayer(codec: PayloadCodec | None = None) -> Replayer:
    """`codec` decrypts encrypted histories; plaintext (older) histories pass through it."""
    return Replayer(
        workflows=[OnboardingWorkflow],
        data_converter=data_converter(codec),
        runtime=_replay_runtime(),
    )


async def replay_histories(
    histories: Iterable[WorkflowHistory], codec: PayloadCodec | None = None
) -> list[ReplayOutcome]:
    """Replay each history against today's `OnboardingWorkflow`; one outcome per history."""
    from temporalio.workflow import NondeterminismError

    async def feed(items: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
        for item in items:
            yield item

    items = list(histories)
    outcomes: list[ReplayOutcome] = []
    async with replayer(codec).workflow_replay_iterator(feed(items)) as results:
        async for result in results:
            failure = result.replay_failure
            wid = result.history.workflow_id
            outcomes.append(
                ReplayOutcome(
                    session_id=session_of(wid),
                    workflow_id=wid,
                    ok=failure is None,
                    failure=None if failure is None else str(failure),
                    nondeterminism=isinstance(failure, NondeterminismError),
                )
            )
    return outcomes
