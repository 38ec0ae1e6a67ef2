"""Vendor webhooks: verified over the raw body, deduplicated by event id, then signaled.

No API key here: the HMAC signature is the authentication. The order matters:
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
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from gateway.errors import Refusal
from gateway.state import Gateway, bind_session, gateway_of
from signgate.errors import SigngateError
from signgate.metrics import WEBHOOK_REJECTIONS
from signgate.models import VendorResult
from signgate.vendor_api import parse_vendor_webhook, session_id_from_reference, to_check_result
from signgate.webhooks import SIGNATURE_HEADER, verify_webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = structlog.get_logger("signgate.gateway")

MAX_WEBHOOK_BYTES = 256 * 1024
# The one configured vendor; the activities' VendorClient reports the same provider name.
VENDOR_PROVIDER = "sandbox"


class WebhookAccepted(BaseModel):
    duplicate: bool


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


@router.post("/vendor")
async def vendor_webhook(
    request: Request, gateway: Annotated[Gateway, Depends(gateway_of)]
) -> WebhookAccepted:
    settings = gateway.settings
    try:
        body = await _read_capped(request, MAX_WEBHOOK_BYTES)
        verify_webhook(
            request.headers.get(SIGNATURE_HEADER),
            body,
            settings.webhook_secrets,
            now=int(time.time()),
            tolerance_s=settings.webhook_tolerance_s,
        )
        webhook = parse_vendor_webhook(body)
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
    if await asyncio.to_thread(gateway.events.seen, webhook.event_id):
        log.info("webhook_duplicate")
        return WebhookAccepted(duplicate=True)

    result = to_check_result(
        webhook.result,
        provider=VENDOR_PROVIDER,
        latency_ms=0,  # the vendor's processing time is not in the webhook
        raw_sha256=hashlib.sha256(body).hexdigest(),
    )
    await gateway.sessions.vendor_result(
        session_id,
        VendorResult(vendor_ref=webhook.vendor_ref, event_id=webhook.event_id, result=result),
    )
    new = await asyncio.to_thread(gateway.events.record, webhook.event_id, session_id)
    log.info("webhook_signaled", check=webhook.check.value, raced_duplicate=not new)
    return WebhookAccepted(duplicate=False)
