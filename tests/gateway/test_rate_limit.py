"""Per-key token buckets: a key that outruns its rate hears 429 with Retry-After; others don't.

The gateway here runs over real HTTP without Temporal: the limited calls are refused at
path validation, after authentication, so they cost no workflow call.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.ratelimit import TokenBuckets
from signgate.api_keys import KeyStore, key_store_path
from signgate.settings import Settings
from tests.support import serve_app
from workers.ports import free_port


def test_bucket_grants_a_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate_per_s=2.0, burst=3)
    assert [buckets.take("k", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", now=100.0) == 0.5  # one token is due in 1/rate
    assert buckets.take("k", now=100.5) == 0.0
    assert buckets.take("other", now=100.5) == 0.0


def test_bucket_forgets_the_least_recently_used_key_past_its_bound() -> None:
    buckets = TokenBuckets(rate_per_s=1.0, burst=1, max_keys=2)
    buckets.take("a", now=0.0)
    buckets.take("b", now=0.0)
    buckets.take("c", now=0.0)  # "a" goes: it starts over with a full bucket
    assert buckets.take("a", now=0.0) == 0.0
    assert buckets.take("c", now=0.0) == 1.0


async def test_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path / "var",
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing listens: no Temporal needed
        rate_limit_per_s=0.2,
        rate_limit_burst=2,
    )
    store = KeyStore(key_store_path(settings.var_dir))
    _, limited = store.create("demo", "busy-app", ["app"])
    _, calm = store.create("demo", "calm-app", ["app"])
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        answers = [
            await http.get("/v1/sessions/bad!id", headers={"X-API-Key": limited}) for _ in range(3)
        ]
        other = await http.get("/v1/sessions/bad!id", headers={"X-API-Key": calm})
        health = await http.get("/healthz")
    assert [a.status_code for a in answers] == [422, 422, 429]
    refused = answers[2]
    assert refused.json()["error"]["reason"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 5  # a token is due in 1/0.2 s
    assert other.status_code == 422
    assert health.status_code == 200
