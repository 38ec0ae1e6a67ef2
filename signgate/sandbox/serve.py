"""Serve the sandbox until stopped (in `signgate dev`, or `python -m signgate.sandbox`)."""

from __future__ import annotations

import asyncio

import uvicorn

from signgate.models import CheckKind
from signgate.sandbox.app import create_sandbox_app
from signgate.settings import Settings


async def run_sandbox(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    latency_ms: dict[CheckKind, int] | None = None,
    webhook_delay_s: float = 0.5,
    hang_s: float = 30.0,
    log_level: str = "warning",
) -> None:
    """Serve the sandbox on `port` (default `settings.sandbox_port`) until `stop` is set.

    The API key and the webhook secret come from the same settings the vendor adapter and
    the gateway read, so the three agree without being told.
    """
    app = create_sandbox_app(
        webhook_secret=settings.webhook_secrets[0],
        api_key=settings.vendor_api_key,
        latency_ms=latency_ms,
        webhook_delay_s=webhook_delay_s,
        hang_s=hang_s,
    )
    config = uvicorn.Config(app, host=host, port=port or settings.sandbox_port, log_level=log_level)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task((stop or asyncio.Event()).wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving
