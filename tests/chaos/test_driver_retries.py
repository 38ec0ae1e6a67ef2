"""The chaos driver retries as an app must (through 5xx and connection errors, never a
4xx), and counts what it retried after, so a run's report says where its time went."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from chaos.drive import Retries, retrying
from chaos.run import ChaosReport, render
from signgate.client import GatewayError


async def test_retries_through_5xx_and_connection_errors_and_counts_them() -> None:
    failures: list[Exception] = [
        GatewayError(503, "status_unavailable", "the session could not report status"),
        httpx.ConnectError("refused"),
        GatewayError(503, "status_unavailable", "again"),
    ]

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "answered"

    retries = Retries()
    assert await retrying(call, retries=retries) == "answered"
    assert retries.count == {"503 status_unavailable": 2, "ConnectError": 1}
    # Each failed attempt costs at least its back-off (0.2 s, then 0.4 s, then 0.8 s).
    assert retries.seconds["503 status_unavailable"] >= 0.2 + 0.8
    assert retries.seconds["ConnectError"] >= 0.4


async def test_a_4xx_is_not_retried_nor_counted() -> None:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise GatewayError(409, "session_not_awaiting_capture", "too late")

    retries = Retries()
    with pytest.raises(GatewayError):
        await retrying(call, retries=retries)
    assert calls == 1
    assert not retries.count


def test_the_report_lists_the_retries_most_frequent_first() -> None:
    retries = Retries()
    retries.add("ConnectError", 0.5)
    for _ in range(3):
        retries.add("503 temporal_unavailable", 10.2)
    report = ChaosReport(1, 7, 2, datetime.now(UTC), 1.0, [], [], retries=retries)
    table = render(report)
    assert table.index("| 503 temporal_unavailable | 3 | 31 |") < table.index(
        "| ConnectError | 1 | 0 |"
    )
