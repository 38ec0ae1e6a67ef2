"""The onboarding workflow as the gateway sees it: addressed by name, never imported.

The gateway knows the workflow's type, id scheme, handler names and search attributes,
and speaks the shared models to it; the workflow code itself stays out of this process.
Temporal errors become refusals here, so routes read like the API they serve.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from gateway.errors import Refusal, session_not_found
from signgate.models import (
    EvidenceSubmission,
    OnboardingRequest,
    OnboardingStatus,
    ReviewInput,
    ReviewOutcome,
    Stage,
    VendorResult,
)
from signgate.payload_codec import codec_for
from signgate.settings import ApiKey, Settings
from workers.client import TemporalUnreachable, connect_client, decode_payloads

log = structlog.get_logger("signgate.gateway")

WORKFLOW_TYPE = "OnboardingWorkflow"
WORKFLOW_ID_PREFIX = "onboarding-"

# The workflow upserts these (workflows/search_attributes.py owns the definitions); the
# gateway names them as the workflow's public contract instead of importing workflow code.
ONBOARDING_STATUS = SearchAttributeKey.for_keyword("OnboardingStatus")
RISK_TIER = SearchAttributeKey.for_keyword("RiskTier")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")


def start_search_attributes(tenant_id: str) -> TypedSearchAttributes:
    """What a session's visibility says from the moment it is started: its tenant (so
    tenant isolation holds before its first workflow task) and `awaiting_capture`. Set at
    the start, they cost the workflow no upsert (it upserts only what changes)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ID, tenant_id),
            SearchAttributePair(ONBOARDING_STATUS, Stage.awaiting_capture.value),
        ]
    )


REVIEW_STAGES = (Stage.awaiting_review, Stage.escalated)
# The workflow validator's reason codes an API caller sees as they are (the rest of its
# refusals are `review_refused`, with the validator's message).
REVIEW_REFUSAL_REASONS = ("step_up_limit_reached", "step_up_unavailable")
CAPTURE_STAGES = (Stage.awaiting_capture, Stage.awaiting_step_up)
# A status query is answered by a worker. While workers churn (a crash, a deploy) that can
# take longer than an app's HTTP timeout: the chaos run saw queries held 30 s. Past this,
# the app gets 503 `status_unavailable` with Retry-After instead of a hanging request.
STATUS_QUERY_TIMEOUT = timedelta(seconds=10)

# The status query answers from the workflow's initial state before its first task has run
# `_issue_challenge`; a just-started session gets this long to show its challenge.
_CHALLENGE_WAIT_S = 5.0
_POLL_S = 0.05


def workflow_id(session_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{session_id}"


class ReviewQueueItem(BaseModel):
    session_id: str
    status: str | None
    risk_tier: str | None
    tenant_id: str | None
    start_time: datetime


class TemporalAccess:
    """The Temporal client, given or connected on first use (and retried after a failure)."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect_client(
                        self._settings.temporal_address,
                        self._settings.temporal_namespace,
                        payload_codec=codec_for(self._settings),
                    )
                except (TemporalUnreachable, RuntimeError, RPCError, OSError) as exc:
                    log.warning("temporal_connect_failed", error_type=type(exc).__name__)
                    raise Refusal(
                        503, "temporal_unavailable", "the workflow service is not reachable"
                    ) from exc
            return self._client


_NO_ANSWER_IN_TIME = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)


async def _query_status(handle: WorkflowHandle[Any, Any]) -> OnboardingStatus:
    try:
        status: OnboardingStatus = await handle.query(
            "status", result_type=OnboardingStatus, rpc_timeout=STATUS_QUERY_TIMEOUT
        )
    except (RPCError, RPCTimeoutOrCancelledError) as err:
        # The SDK ends a call at its rpc_timeout as CANCELLED; the server, as DEADLINE_EXCEEDED.
        if isinstance(err, RPCError) and err.status not in _NO_ANSWER_IN_TIME:
            raise
        seconds = STATUS_QUERY_TIMEOUT.total_seconds()
        raise Refusal(
            503,
            "status_unavailable",
            f"the session did not report its status within {seconds:g} s (its workers are "
            "busy or restarting): retry",
            headers={"Retry-After": "1"},
        ) from err
    return status


@asynccontextmanager
async def _temporal_errors(session_id: str) -> AsyncIterator[None]:
    """Temporal's errors, as the refusals an API caller can act on."""
    try:
        yield
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise session_not_found(session_id) from err
        log.warning("temporal_call_failed", grpc_status=err.status.name)
        raise Refusal(503, "temporal_unavailable", "the workflow service failed") from err
    except RPCTimeoutOrCancelledError as err:
        raise Refusal(503, "temporal_unavailable", "the workflow service timed out") from err
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        log.warning("status_query_failed", error_type=type(err).__name__)
        raise Refusal(503, "status_unavailable", "the session could not report status") from err


class Sessions:
    """Start, look up, signal and review onboarding sessions."""

    def __init__(self, temporal: TemporalAccess, settings: Settings) -> None:
        self._temporal = temporal
        self._settings = settings

    async def _handle(self, session_id: str) -> WorkflowHandle[Any, Any]:
        client = await self._temporal.client()
        return client.get_workflow_handle(workflow_id(session_id))

    async def start(self, request: OnboardingRequest) -> None:
        """Start the session; starting it again (running or closed) is not an error.

        USE_EXISTING answers a duplicate start of a running session with that run;
        REJECT_DUPLICATE stops a closed session's id from starting a second, new run.
        The tenant and status are set at start (`start_search_attributes`), not at the
        first workflow task, so tenant isolation holds from the first moment the session
        exists.
        """
        client = await self._temporal.client()
        try:
            async with _temporal_errors(request.session_id):
                await client.start_workflow(
                    WORKFLOW_TYPE,
                    request,
                    id=workflow_id(request.session_id),
                    task_queue=self._settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=start_search_attributes(request.tenant_id),
                )
        except WorkflowAlreadyStartedError:
            log.info("session_already_closed_returning_it")
        if await self.tenant_of(request.session_id) != request.tenant_id:
            raise Refusal(409, "session_id_taken", "this session id is not available")

    async def tenant_of(self, session_id: str) -> str | None:
        handle = await self._handle(session_id)
        async with _temporal_errors(session_id):
            description = await handle.describe()
        if description.workflow_type != WORKFLOW_TYPE:
            raise session_not_found(session_id)
        return description.typed_search_attributes.get(TENANT_ID)

    async def authorize(self, key: ApiKey, session_id: str) -> None:
        """404 unless the session exists and, for an app, belongs to the app's tenant."""
        tenant = await self.tenant_of(session_id)
        if key.role == "app" and tenant != key.tenant_id:
            raise session_not_found(session_id)

    async def status(
        self, session_id: str, *, wait_for_challenge: bool = False
    ) -> OnboardingStatus:
        handle = await self._handle(session_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (_CHALLENGE_WAIT_S if wait_for_challenge else 0)
        while True:
            async with _temporal_errors(session_id):
                status = await _query_status(handle)
            if status.challenge_nonce or status.stage is not Stage.awaiting_capture:
                return status
            if loop.time() >= deadline:
                return status
            await asyncio.sleep(_POLL_S)

    async def submit_evidence(self, session_id: str, submission: EvidenceSubmission) -> None:
        handle = await self._handle(session_id)
        async with _temporal_errors(session_id):
            await handle.signal("evidence_submitted", submission)

    async def vendor_result(self, session_id: str, result: VendorResult) -> None:
        handle = await self._handle(session_id)
        async with _temporal_errors(session_id):
            await handle.signal("vendor_result", result)

    async def review(self, session_id: str, review: ReviewInput) -> ReviewOutcome:
        """Every reviewer's action goes through here (API, console), so the rules the
        gateway holds beside the workflow's validator are applied once, for all paths."""
        if same_person(await self.applicant_of(session_id), review.reviewer_id):
            raise Refusal(
                403, "review_own_session", "a reviewer may not decide their own onboarding"
            )
        handle = await self._handle(session_id)
        try:
            async with _temporal_errors(session_id):
                outcome: ReviewOutcome = await handle.execute_update(
                    "review", review, result_type=ReviewOutcome
                )
                return outcome
        except WorkflowUpdateFailedError as err:
            # The validator's refusal (or the handler's) is a message a reviewer can act on.
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            reason = "review_refused"
            if isinstance(cause, ApplicationError) and cause.type in REVIEW_REFUSAL_REASONS:
                reason = cause.type
            raise Refusal(409, reason, message) from err
        except Refusal as refusal:
            if refusal.reason != "session_not_found":
                raise
            # A closed session refuses updates with NOT_FOUND; say why if it exists.
            if await self._is_closed(session_id):
                raise Refusal(409, "review_refused", "session is closed") from refusal
            raise

    async def applicant_of(self, session_id: str) -> str:
        """The session's subject_ref, from the workflow's own start input (the first history
        event), so it is the value the session runs with, not one the gateway kept aside."""
        client = await self._temporal.client()
        handle = client.get_workflow_handle(workflow_id(session_id))
        try:
            async for event in handle.fetch_history_events(page_size=1):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                request = await decode_payloads(client, payloads[:1], OnboardingRequest)
                if isinstance(request, OnboardingRequest):
                    return str(request.subject_ref)
                break
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise Refusal(503, "temporal_unavailable", "the workflow service failed") from err
        except (ValueError, TypeError):
            pass  # not an onboarding session's input: the same answer as no session
        raise session_not_found(session_id)

    async def _is_closed(self, session_id: str) -> bool:
        handle = await self._handle(session_id)
        async with _temporal_errors(session_id):
            description = await handle.describe()
        return description.status not in (None, WorkflowExecutionStatus.RUNNING)

    async def awaiting_review(self, limit: int = 1000) -> list[ReviewQueueItem]:
        """The review queue, from one visibility query on the status search attribute."""
        stages = ", ".join(f"'{stage.value}'" for stage in REVIEW_STAGES)
        query = (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
            f" AND {ONBOARDING_STATUS.name} IN ({stages})"
        )
        client = await self._temporal.client()
        items: list[ReviewQueueItem] = []
        async with _temporal_errors("*"):
            async for execution in client.list_workflows(query, limit=limit):
                attributes = execution.typed_search_attributes
                items.append(
                    ReviewQueueItem(
                        session_id=execution.id.removeprefix(WORKFLOW_ID_PREFIX),
                        status=attributes.get(ONBOARDING_STATUS),
                        risk_tier=attributes.get(RISK_TIER),
                        tenant_id=attributes.get(TENANT_ID),
                        start_time=execution.start_time,
                    )
                )
        items.sort(key=lambda item: item.start_time)
        return items


def same_person(subject_ref: str, principal: str) -> bool:
    """Compared after NFKC and case folding, so a look-alike spelling is still the same id."""

    def norm(value: str) -> str:
        return unicodedata.normalize("NFKC", value).casefold().strip()

    return norm(subject_ref) == norm(principal)
