"""`signgate dev` points the Temporal Web UI at the gateway's remote codec.

A real dev server with its UI, built from settings as `signgate dev` builds it; the UI's
own settings endpoint (what the browser reads) names our codec endpoint.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support import make_settings
from workers.devserver import DevServer
from workers.ports import free_port


async def test_dev_server_ui_uses_the_gateway_codec_endpoint(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "var",
        "http://127.0.0.1:9",
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
    )
    server = DevServer.from_settings(settings, ui=True)
    assert "--ui-codec-endpoint" in server.command()
    settings.var_dir.mkdir(parents=True)
    async with server:
        ui_settings = await _ui_settings(settings.temporal_ui_port)
    assert ui_settings["Codec"]["Endpoint"] == f"{settings.gateway_url}/codec"


async def _ui_settings(ui_port: int) -> dict[str, dict[str, str]]:
    """The UI's /api/v1/settings, polled (bounded) until the UI answers."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        for _ in range(150):
            try:
                response = await http.get(f"http://127.0.0.1:{ui_port}/api/v1/settings")
                if response.status_code == 200:
                    body: dict[str, dict[str, str]] = response.json()
                    return body
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the Temporal UI on port {ui_port} never answered")
