"""Run the gateway with uvicorn inside an existing event loop, until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from temporalio.client import Client

from gateway.app import create_app
from signgate.settings import Settings


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process.

    uvicorn's own SIGINT/SIGTERM handlers would replace the ones `signgate dev` installs and
    re-raise the signal after shutdown; here the host says when to stop, through `stop`.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Serve on settings.gateway_host:gateway_port; drain and return once `stop` is set.

    Raises if the server fails to start (e.g. the port is taken) or dies early.
    """
    config = uvicorn.Config(
        create_app(settings, client),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,  # keep the host's logging; our own access line is in the app
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = _EmbeddedServer(config)
    # Bind here so a taken port raises OSError to the caller; uvicorn itself would
    # sys.exit(1), and a SystemExit inside a task takes the whole event loop down.
    sock = _bind(settings.gateway_host, settings.gateway_port)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="gateway-uvicorn")
    stopping = asyncio.create_task(stop.wait(), name="gateway-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.should_exit = True
        try:
            await serving
        finally:
            sock.close()
    if not stop.is_set():
        # uvicorn returns (without raising) when it cannot bind; say so.
        raise RuntimeError(
            f"gateway stopped unexpectedly on {settings.gateway_host}:{settings.gateway_port}"
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
