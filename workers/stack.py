"""The embedded stack in one process tree: Temporal dev server, vendor sandbox, gateway and
an onboarding worker. `signgate dev` runs it until Ctrl-C; `signgate demo` and the
end-to-end tests run it around their work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from temporalio.client import Client

from activities.deps import ActivityDeps
from gateway.server import serve as serve_gateway
from signgate.api_keys import ensure_dev_keys
from signgate.payload_codec import codec_for
from signgate.sandbox import run_sandbox
from signgate.settings import Settings
from workers.client import connect_client
from workers.devserver import DevServer, ui_codec_endpoint_for
from workers.onboarding_worker import build_worker
from workers.ports import ensure_port_free
from workers.retention_schedule import ensure_retention_schedule

log = structlog.get_logger(__name__)


@dataclass
class RunningStack:
    settings: Settings
    client: Client
    devserver: DevServer


def _check_ports(settings: Settings, with_sandbox: bool) -> None:
    """Fail before starting anything, naming the port and what wanted it."""
    ensure_port_free(
        settings.gateway_host,
        settings.gateway_port,
        "signgate gateway",
        setting="SIGNGATE_GATEWAY_PORT",
    )
    if with_sandbox:
        ensure_port_free(
            "127.0.0.1", settings.sandbox_port, "vendor sandbox", setting="SIGNGATE_SANDBOX_PORT"
        )


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, *, ui: bool = True, with_sandbox: bool = True
) -> AsyncIterator[RunningStack]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    # First: a lost keys directory is refused (signing_key_missing) before the payload
    # codec or the KEK could be minted.
    deps = ActivityDeps.from_settings(settings)
    try:
        _check_ports(settings, with_sandbox)
        # Dev keys: minted at first start into the key store (hashed) and a 0600 file.
        ensure_dev_keys(settings.var_dir)
        host, _, port = settings.temporal_address.rpartition(":")
        devserver = DevServer(
            db_path=settings.temporal_db,
            host=host or "127.0.0.1",
            port=int(port),
            ui_port=settings.temporal_ui_port if ui else None,
            log_path=settings.var_dir / "temporal.log",
            payload_codec=codec_for(settings),
            ui_codec_endpoint=ui_codec_endpoint_for(settings),
        )
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        async with devserver:
            client = await connect_client(
                settings.temporal_address,
                settings.temporal_namespace,
                payload_codec=codec_for(settings),
            )
            try:
                if with_sandbox:
                    tasks.append(asyncio.create_task(run_sandbox(settings, stop)))
                tasks.append(asyncio.create_task(serve_gateway(settings, stop, client=client)))
                async with build_worker(client, settings, deps):
                    await _wait_until_serving(settings, tasks)
                    await ensure_retention_schedule(client, settings)
                    log.info(
                        "stack_ready",
                        gateway=settings.gateway_url,
                        temporal=settings.temporal_address,
                    )
                    yield RunningStack(settings, client, devserver)
                    stop.set()
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=20)
    finally:
        await deps.aclose()


async def _wait_until_serving(settings: Settings, tasks: list[asyncio.Task[None]]) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(200):
            for task in tasks:
                if task.done():
                    task.result()  # surfaces a failed start (e.g. port taken)
            try:
                if (await http.get(f"{settings.gateway_url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("gateway did not answer /healthz within 10 s")
