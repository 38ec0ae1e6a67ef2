"""Per-key rate limits: a token bucket per API key, refused with 429 and Retry-After.

A token bucket allows a burst and then a steady rate, which is what an onboarding app
does (a burst of uploads, then polling). It is twenty lines, so it is written here rather
than taken from a library whose windows (fixed, sliding) would refuse a legitimate burst.
Buckets live in this process: behind several gateway replicas each one enforces the rate
on its own share. Requests without a key are not bucketed: they are refused with 401
after one indexed lookup, and a bucket per random guess would only cost memory.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth import presented_key
from gateway.errors import error_body

log = structlog.get_logger("signgate.gateway")


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """`rate_per_s` tokens a second up to `burst`; the least recently used buckets go
    first once more than `max_keys` keys are tracked (a full bucket is the default anyway)."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, who: str, now: float) -> float:
        """Take a token for `who`: 0.0 if granted, else the seconds until one is due."""
        bucket = self._buckets.pop(who, None) or _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        self._buckets[who] = bucket
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s


class RateLimit:
    """429 `rate_limited` with Retry-After (whole seconds, >= 1) once a key's bucket is dry."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        key = presented_key(Request(scope))
        if key is None:
            await self.app(scope, receive, send)
            return
        # Bucketed by the key's hash: the key itself is not kept in memory longer than needed.
        who = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        wait_s = self.buckets.take(who, time.monotonic())
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait_s))
        log.info("request_refused", reason="rate_limited", status=429)
        response = JSONResponse(
            error_body("rate_limited", f"too many requests for this key; retry in {retry_after} s"),
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
