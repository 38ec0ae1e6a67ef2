"""The gateway's traffic guards, installed in one place and in one order (outermost first):
rate limit (cheapest refusal first), body size cap, then idempotency (which reads the
already capped body)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.body_limit import BodyLimit
from gateway.idempotency import Idempotency, IdempotencyStore
from gateway.ratelimit import RateLimit, TokenBuckets
from gateway.state import Gateway


def install_guards(app: FastAPI, gateway: Gateway) -> None:
    settings = gateway.settings
    # Starlette wraps the app in reverse order of add_middleware: add innermost first.
    app.add_middleware(Idempotency, store=IdempotencyStore(settings.gateway_db), keys=gateway.keys)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        RateLimit, buckets=TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
    )
