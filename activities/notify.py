"""deliver_app_event: one attempt to tell the app about its session; Temporal retries it.

The activity makes a single attempt and lets the retry policy of `AppEventWorkflow` do the
backoff, so every attempt is visible to ops (attempt number, last failure) and survives a
worker restart. Reason codes decide retrying: `BadInput` (4xx, redirect, a URL no longer
allowed) stops at once, `Fault` (5xx, 408, 429, timeout, unreachable) tries again.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import structlog
from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from signgate.errors import SigngateError
from signgate.models import AppEventDelivery, DeliveryOutcome
from signgate.outbound import check_callback_url, check_resolved, post_event

log = structlog.get_logger(__name__)


class NotifyActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="deliver_app_event")
    @reason_coded
    async def deliver_app_event(self, delivery: AppEventDelivery) -> DeliveryOutcome:
        settings = self._deps.settings
        event = delivery.event
        attempt = activity.info().attempt if activity.in_activity() else 1
        structlog.contextvars.bind_contextvars(event_id=event.event_id, event_type=event.type.value)
        try:
            host = check_callback_url(delivery.callback_url, settings.callback_allowed_hosts)
            port = urlsplit(delivery.callback_url).port
            address = await asyncio.to_thread(
                check_resolved, host, port, settings.callback_allowed_hosts
            )
            async with httpx.AsyncClient() as client:
                status = await post_event(
                    client,
                    delivery.callback_url,
                    event,
                    settings.webhook_secrets[0],
                    int(time.time()),
                    address,
                )
        except SigngateError as err:
            log.warning("app_event_delivery_failed", reason=err.reason, attempt=attempt)
            raise
        log.info("app_event_delivered", status=status, attempt=attempt)
        return DeliveryOutcome(
            event_id=event.event_id, delivered=True, attempts=attempt, status_code=status
        )
