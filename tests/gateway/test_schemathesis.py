"""schemathesis against the gateway's own OpenAPI schema, over real HTTP: zero 5xx.

The examples come from the schema (valid and invalid ones), are sent with a real app key
and a real reviewer key to the real stack, and the budget is bounded (and derandomized,
so a CI failure reproduces). schemathesis is synchronous; it runs in a thread so the
gateway, served on this event loop, can answer it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.gateway.conftest import APP_KEY, REVIEWER_KEY, GatewayStack

EXAMPLES_PER_KEY = 60


def fuzz(raw_schema: dict[str, Any], base_url: str, api_key: str) -> list[tuple[str, int]]:
    schema = schemathesis.openapi.from_dict(raw_schema)
    seen: list[tuple[str, int]] = []

    @given(case=schema.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_KEY,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_errors(case: Any) -> None:
        headers = {**(case.headers or {}), "X-API-Key": api_key}
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        seen.append((f"{case.method} {case.path}", response.status_code))
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)

    no_server_errors()
    return seen


@pytest.mark.parametrize("api_key", [APP_KEY, REVIEWER_KEY], ids=["app", "reviewer"])
async def test_schema_driven_requests_never_get_a_5xx(gw: GatewayStack, api_key: str) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        raw_schema = (await http.get("/openapi.json")).json()
    seen = await asyncio.to_thread(fuzz, raw_schema, gw.base_url, api_key)
    assert len(seen) >= EXAMPLES_PER_KEY // 2  # the budget was really spent
    assert len({operation for operation, _ in seen}) >= 4  # across the API, not one route
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
