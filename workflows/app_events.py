"""AppEventWorkflow: delivers one status event to the app, retrying with backoff.

A child of the onboarding saga, started with ParentClosePolicy.ABANDON: the saga only
waits for it to *start*, never for the app to answer, so a dead callback cannot hold back a
decision, an unlock or the end of the session. Its workflow id is `app-event-<event id>`,
so a second start of the same event is refused by Temporal instead of sending twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from signgate.models import AppEventDelivery, DeliveryOutcome

WORKFLOW_TYPE = "AppEventWorkflow"
WORKFLOW_ID_PREFIX = "app-event-"
# Backoff 2 s, 4 s, ... capped at 10 min; the app gets a day to come back.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=30,
)
ATTEMPT_TIMEOUT = timedelta(seconds=30)
DELIVERY_WINDOW = timedelta(hours=24)


def delivery_workflow_id(event_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{event_id}"


@workflow.defn(name=WORKFLOW_TYPE)
class AppEventWorkflow:
    @workflow.run
    async def run(self, delivery: AppEventDelivery) -> DeliveryOutcome:
        try:
            return await workflow.execute_activity(
                "deliver_app_event",
                delivery,
                result_type=DeliveryOutcome,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=DELIVERY_WINDOW,
                retry_policy=DELIVERY_RETRY,
            )
        except ActivityError as err:
            # Given up (non-retryable refusal, or out of attempts): say so, do not fail.
            # The app can always poll the session's status; nothing here is lost.
            cause = err.cause
            reason = cause.type if isinstance(cause, ApplicationError) else None
            return DeliveryOutcome(
                event_id=delivery.event.event_id,
                delivered=False,
                reason=reason or "delivery_failed",
            )
