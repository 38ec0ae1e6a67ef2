"""The app's status-event deliveries of one session, read from Temporal (for `ops show`).

Each delivery is an `AppEventWorkflow` child the saga started; its history holds the
event, the last attempt (Temporal records the final attempt number, and the failure of
the one before a retry), and the outcome. A delivery still retrying is described instead:
the pending activity carries its attempt count and last failure.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from signgate.models import AppEventDelivery, DeliveryOutcome
from workers.client import decode_payloads
from workflows.app_events import WORKFLOW_TYPE


class DeliveryRow(BaseModel):
    event_id: str
    type: str
    workflow_id: str
    state: str  # delivered | given_up | retrying | <workflow status>
    attempts: int
    status_code: int | None = None
    last_failure: str | None = None


async def app_deliveries(client: Client, onboarding_workflow_id: str) -> list[DeliveryRow]:
    """Every status-event delivery the session's latest run started, in start order."""
    parent = await client.get_workflow_handle(onboarding_workflow_id).fetch_history()
    child_ids = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in parent.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        and e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
        == WORKFLOW_TYPE
    ]
    return [await _delivery_or_gone(client, child_id) for child_id in child_ids]


async def _delivery_or_gone(client: Client, workflow_id: str) -> DeliveryRow:
    """A delivery whose history is gone (retention) is listed as such, not an error."""
    try:
        return await _delivery(client, workflow_id)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return DeliveryRow(
            event_id="?", type="?", workflow_id=workflow_id, state="not_found", attempts=0
        )


async def _delivery(client: Client, workflow_id: str) -> DeliveryRow:
    handle = client.get_workflow_handle(workflow_id)
    # Describe first: a history read after it is at least as new, so its outcome wins.
    description = await handle.describe()
    history = await handle.fetch_history()
    delivery: AppEventDelivery | None = None
    outcome: DeliveryOutcome | None = None
    attempts = 0
    last_failure: str | None = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            delivery = await decode_payloads(client, attrs.input, AppEventDelivery)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts = event.activity_task_started_event_attributes.attempt
            failure = event.activity_task_started_event_attributes.last_failure
            last_failure = failure.message or last_failure
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            last_failure = event.activity_task_failed_event_attributes.failure.message
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = event.workflow_execution_completed_event_attributes.result
            outcome = await decode_payloads(client, result, DeliveryOutcome)
    state = (description.status or WorkflowExecutionStatus.RUNNING).name.lower()
    for pending in description.raw_description.pending_activities:
        attempts = max(attempts, pending.attempt)
        last_failure = pending.last_failure.message or last_failure
        state = "retrying" if pending.attempt > 1 else state
    status_code = None
    if outcome is not None:
        state = "delivered" if outcome.delivered else "given_up"
        status_code = outcome.status_code
        last_failure = outcome.reason or last_failure
    return DeliveryRow(
        event_id=delivery.event.event_id if delivery else "?",
        type=delivery.event.type.value if delivery else "?",
        workflow_id=workflow_id,
        state=state,
        attempts=attempts,
        status_code=status_code,
        last_failure=last_failure,
    )
