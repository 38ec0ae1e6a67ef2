"""The reviewer console under /console: server-rendered pages over the gateway's own
Temporal access and evidence store (see `routes`)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.console.login import Console
from gateway.console.routes import router
from signgate.settings import Settings


def install_console(app: FastAPI, settings: Settings) -> None:
    app.state.console = Console(settings)
    app.include_router(router)
