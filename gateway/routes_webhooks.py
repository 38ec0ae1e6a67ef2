"""Vendor webhooks: verified over the raw body, deduplicated by event id, then signaled.

`POST /v1/webhooks/<vendor>`: the vendor's scheme and secrets come from
`settings.webhook_vendors` (`vendor` is the bundled sandbox, our own scheme). No API key
here: the HMAC signature is the authentication. The order matters:
verify before parsing (a forgery is never even read as JSON), dedupe before signaling,
and record the event id only after the signal landed, so a delivery that failed half-way
is applied when the vendor retries it instead of being lost as a "duplicate".
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from gateway.errors import Refusal
from gateway.state import Gateway, bind_session, gateway_of
from signgate.errors import SigngateError
from signgate.metrics import WEBHOOK_REJECTIONS
from signgate.models import VendorResult
from signgate.vendor_api import parse_vendor_webhook, session_id_from_reference, to_check_result
from signgate.webhook_verifiers import check_event_fresh, verifier_for

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = structlog.get_logger("signgate.gateway")

MAX_WEBHOOK_BYTES = 256 * 1024


class WebhookAccepted(BaseModel):
    duplicate: bool
    # True: an event with a later vendor timestamp for the same vendor_ref was applied first.
    superseded: bool = False


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Refusal(413, "webhook_too_large", f"webhook bodies are limited to {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise Refusal(
                413, "webhook_too_large", f"webhook bodies are limited to {max_bytes} bytes"
            )
    return bytes(body)


@router.post("/{vendor}")
async def vendor_webhook(
    vendor: Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,32}$")],
    request: Request,
    gateway: Annotated[Gateway, Depends(gateway_of)],
) -> WebhookAccepted:
    settings = gateway.settings
    config = settings.webhook_vendors.get(vendor)
    if config is None:
        raise Refusal(404, "webhook_vendor_unknown", f"no webhook vendor named {vendor!r}")
    verifier = verifier_for(config, settings)
    try:
        body = await _read_capped(request, MAX_WEBHOOK_BYTES)
        now = int(time.time())
        signed_at = verifier.verify(request.headers, body, now)
        webhook = parse_vendor_webhook(body)
        if signed_at is None:
            check_event_fresh(webhook.completed_at, now, config.max_event_age_s)
    except SigngateError as err:
        WEBHOOK_REJECTIONS.labels(err.reason).inc()
        raise
    session_id = session_id_from_reference(webhook.reference)
    bind_session(session_id)
    structlog.contextvars.bind_contextvars(event_id=webhook.event_id, vendor_ref=webhook.vendor_ref)
    if webhook.check is not webhook.result.check:
        raise Refusal(
            422,
            "webhook_check_mismatch",
            f"webhook is for {webhook.check.value} but carries a {webhook.result.check.value}",
        )
    events = gateway.events
    if await asyncio.to_thread(events.seen, webhook.event_id):
        log.info("webhook_duplicate")
        return WebhookAccepted(duplicate=True)
    ordering_key = f"{vendor}:{webhook.vendor_ref}"
    if await asyncio.to_thread(events.superseded, ordering_key, webhook.completed_at):
        # A newer event for this vendor_ref was applied: this older one changes nothing.
        await asyncio.to_thread(events.record, webhook.event_id, session_id)
        log.info("webhook_superseded", completed_at=webhook.completed_at)
        return WebhookAccepted(duplicate=False, superseded=True)

    result = to_check_result(
        webhook.result,
        provider=config.provider,
        latency_ms=0,  # the vendor's processing time is not in the webhook
        raw_sha256=hashlib.sha256(body).hexdigest(),
    )
    # The signal returns once Temporal has durably written it to the session's history;
    # only then is the event recorded and the vendor told 2xx.
    await gateway.sessions.vendor_result(
        session_id,
        VendorResult(vendor_ref=webhook.vendor_ref, event_id=webhook.event_id, result=result),
    )
    new = await asyncio.to_thread(
        events.record, webhook.event_id, session_id, ordering_key, webhook.completed_at
    )
    log.info("webhook_signaled", check=webhook.check.value, raced_duplicate=not new)
    return WebhookAccepted(duplicate=False)
