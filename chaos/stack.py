"""The embedded stack as separate processes we can kill: the Temporal dev server on its
SQLite file, the vendor sandbox, the gateway and any number of onboarding workers.

`workers.stack.embedded_stack` runs everything but the dev server in one process, which is
right for `signgate dev` but leaves nothing to SIGKILL. Here each part is its own process,
started the way an operator would start it (`signgate worker`, `signgate gateway`,
`python -m signgate.sandbox`), so the chaos run can kill a worker or the server at any
moment and the benchmarks can measure one process's memory and CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from temporalio.client import Client

from activities.deps import ActivityDeps
from signgate.api_keys import ensure_dev_keys
from signgate.models import CheckKind, SessionTimeouts
from signgate.payload_codec import codec_for
from signgate.settings import Settings
from workers.devserver import DevServer
from workers.ports import free_port

READY_TIMEOUT_S = 60.0


@dataclass
class StackConfig:
    var_dir: Path
    timeouts: SessionTimeouts = field(default_factory=SessionTimeouts)
    vendor_timeout_s: float = 10.0
    latency_ms: dict[CheckKind, int] = field(default_factory=dict)
    webhook_delay_s: float = 0.5
    hang_s: float = 30.0
    max_upload_bytes: dict[str, int] | None = None
    max_cached_workflows: int | None = None


class Stack:
    """Start, kill and restart the parts; every wait is bounded."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        config.var_dir.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            var_dir=config.var_dir,
            temporal_address=f"127.0.0.1:{free_port()}",
            gateway_port=free_port(),
            sandbox_port=free_port(),
            task_queue=f"chaos-{uuid.uuid4().hex[:8]}",
            vendor_timeout_s=config.vendor_timeout_s,
            timeouts=config.timeouts,
        )
        host, _, port = self.settings.temporal_address.rpartition(":")
        self.devserver = DevServer(
            db_path=self.settings.temporal_db,
            host=host,
            port=int(port),
            ui_port=None,
            log_path=config.var_dir / "temporal.log",
            start_timeout_s=READY_TIMEOUT_S,
            # This stack's payload keys (under its var dir), as its worker processes use:
            # the process default would be ./var's, which they could not decrypt.
            payload_codec=codec_for(self.settings),
        )
        self.client: Client | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.gateway: subprocess.Popen[bytes] | None = None
        self.sandbox: subprocess.Popen[bytes] | None = None
        self._logs: list[object] = []
        self.killed_pids: list[int] = []

    # ------------------------------------------------------------------ environment

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            SIGNGATE_VAR_DIR=str(s.var_dir),
            SIGNGATE_TEMPORAL_ADDRESS=s.temporal_address,
            SIGNGATE_GATEWAY_PORT=str(s.gateway_port),
            SIGNGATE_SANDBOX_PORT=str(s.sandbox_port),
            SIGNGATE_TASK_QUEUE=s.task_queue,
            SIGNGATE_VENDOR_TIMEOUT_S=str(s.vendor_timeout_s),
            SIGNGATE_TIMEOUTS=s.timeouts.model_dump_json(),
            SIGNGATE_LOG_LEVEL="WARNING",
        )
        if self.config.max_upload_bytes is not None:
            env["SIGNGATE_MAX_UPLOAD_BYTES"] = json.dumps(self.config.max_upload_bytes)
        return env

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.config.var_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            [sys.executable, *args],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self, workers: int = 1) -> Stack:
        # Keys are made once here, so workers starting together never race to create them.
        await ActivityDeps.from_settings(self.settings).aclose()
        ensure_dev_keys(self.settings.var_dir)  # the app's and the reviewer's API keys
        self.client = await self.devserver.start()
        latencies = ",".join(f"{k.value}={v}" for k, v in self.config.latency_ms.items())
        self.sandbox = self.spawn(
            "sandbox",
            [
                "-m", "signgate.sandbox",
                "--port", str(self.settings.sandbox_port),
                "--latency-ms", latencies,
                "--webhook-delay-s", str(self.config.webhook_delay_s),
                "--hang-s", str(self.config.hang_s),
                "--log-level", "warning",
            ],
        )  # fmt: skip
        await self.start_gateway()
        for _ in range(workers):
            self.start_worker()
        await _wait_http(f"{self.settings.resolved_vendor_url}/healthz", self.sandbox)
        return self

    async def start_gateway(self) -> None:
        self.gateway = self.spawn("gateway", ["-m", "cli", "gateway"])
        await _wait_http(f"{self.settings.gateway_url}/healthz", self.gateway)

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self.spawn(f"worker-{len(self.workers)}", ["-m", "cli", "worker"])
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as a crash would: no drain, no goodbye to the server."""
        self.killed_pids.append(worker.pid)
        _kill(worker)

    async def crash_and_restart_server(self) -> Client:
        """SIGKILL the dev server, then start it again on the same SQLite file and port."""
        self.devserver.kill()
        self.client = await self.devserver.start()
        return self.client

    async def stop(self) -> None:
        for proc in [*self.workers, self.gateway, self.sandbox]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in [*self.workers, self.gateway, self.sandbox]:
            if proc is None:
                continue
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            _kill(proc)
        await self.devserver.stop()
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


async def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} while starting")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT_S:.0f} s")
