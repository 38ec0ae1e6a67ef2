"""`gateway.server.serve` as `signgate dev` runs it: it starts before Temporal is up, refuses
work with a clear 503 meanwhile, fails loudly on a taken port, and stops when told."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from gateway.server import serve
from signgate.api_keys import ensure_dev_keys
from signgate.settings import Settings
from tests.support import free_port


def offline_settings(tmp_path: Path) -> Settings:
    # Nothing listens on this Temporal address.
    return Settings(
        var_dir=tmp_path / "var",
        gateway_port=free_port(),
        temporal_address=f"127.0.0.1:{free_port()}",
    )


async def test_gateway_without_temporal_serves_health_and_refuses_work_503(
    tmp_path: Path,
) -> None:
    settings = offline_settings(tmp_path)
    ensure_dev_keys(settings.var_dir)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=5.0) as http:
            for _ in range(100):
                try:
                    health = await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert health.json() == {"status": "ok", "temporal_connected": False}
            response = await http.post(
                "/v1/sessions",
                json={"subject_ref": "u", "intent": "i"},
                headers={"X-API-Key": settings.api_key_for("app")},
            )
        assert response.status_code == 503
        assert response.json()["error"]["reason"] == "temporal_unavailable"
    finally:
        stop.set()
    await asyncio.wait_for(serving, timeout=15)


async def test_gateway_on_a_taken_port_raises_instead_of_exiting(tmp_path: Path) -> None:
    settings = offline_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind((settings.gateway_host, settings.gateway_port))
        squatter.listen()
        with pytest.raises(OSError):
            await asyncio.wait_for(serve(settings, asyncio.Event()), timeout=10)
