"""The embedded Temporal: `temporal server start-dev` on a SQLite file under the var dir.

One process we own: started in its own process group (so a Ctrl-C in the terminal reaches
us, and we decide how the server stops), its output appended to a log file, and every
wait bounded. `start()` returns only when the frontend answers and our search attributes
are registered, so a workflow started right after cannot hit an unknown attribute.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from temporalio.client import Client
from temporalio.converter import PayloadCodec

from signgate.errors import SigngateError
from signgate.payload_codec import codec_for
from signgate.settings import Settings
from workers.binaries import temporal_cli_path
from workers.client import TemporalUnreachable, connect_client
from workers.ports import ensure_port_free
from workers.search_attributes import ALL, ensure_search_attributes, missing_search_attributes

# Passed on the command line too, so a fresh database has them from the first moment;
# start() still registers them, because start-dev ignores the flag on an existing file.
SEARCH_ATTRIBUTE_FLAGS = [f"{key.name}=Keyword" for key in ALL]
# WAL + synchronous=normal: 2.5-4x faster than the defaults and still durable when the
# process is killed (only a power loss can drop the last commits).
SQLITE_PRAGMAS = ["journal_mode=wal", "synchronous=normal"]
LOG_TAIL_LINES = 40


def ui_codec_endpoint_for(settings: Settings) -> str:
    """The gateway's remote codec, as the browser showing the UI reaches it."""
    return f"{settings.gateway_url}/codec"


class DevServerError(SigngateError):
    reason = "temporal_dev_server_failed"
    http_status = 503


class DevServer:
    def __init__(
        self,
        *,
        db_path: Path,
        host: str = "127.0.0.1",
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        log_path: Path | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
        payload_codec: PayloadCodec | None = None,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.log_path = Path(log_path) if log_path else self.db_path.with_suffix(".log")
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # Clients made here encrypt like every other (None: the process settings' codec).
        self.payload_codec = payload_codec
        # The UI decodes payloads through this remote codec (the gateway's /codec).
        self.ui_codec_endpoint = ui_codec_endpoint
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, ui: bool = True) -> DevServer:
        host, _, port = settings.temporal_address.rpartition(":")
        return cls(
            db_path=settings.temporal_db,
            host=host or "127.0.0.1",
            port=int(port),
            ui_port=settings.temporal_ui_port if ui else None,
            namespace=settings.temporal_namespace,
            log_path=settings.var_dir / "temporal.log",
            payload_codec=codec_for(settings),
            ui_codec_endpoint=ui_codec_endpoint_for(settings),
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        cmd = [
            str(temporal_cli_path()),
            "server",
            "start-dev",
            "--db-filename", str(self.db_path),
            "--ip", self.host,
            "--port", str(self.port),
            "--namespace", self.namespace,
        ]  # fmt: skip
        if self.ui_port is None:
            cmd.append("--headless")
        else:
            # The news feed is fetched from the internet by the browser; we stay local.
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
            if self.ui_codec_endpoint:
                cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for flag in SEARCH_ATTRIBUTE_FLAGS:
            cmd += ["--search-attribute", flag]
        for pragma in SQLITE_PRAGMAS:
            cmd += ["--sqlite-pragma", pragma]
        return cmd + ["--log-level", "warn"]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Client:
        """Start the server; return a client once it answers with our search attributes."""
        if self.running:
            raise DevServerError(f"the Temporal dev server on {self.address} is already running")
        ensure_port_free(
            self.host, self.port, "Temporal frontend", setting="SIGNGATE_TEMPORAL_ADDRESS"
        )
        if self.ui_port is not None:
            ensure_port_free(
                self.host, self.ui_port, "Temporal Web UI", setting="SIGNGATE_TEMPORAL_UI_PORT"
            )
        self._spawn()
        try:
            return await self._wait_ready()
        except BaseException:
            self.kill()
            raise

    async def stop(self) -> None:
        """SIGTERM, wait up to stop_timeout_s, then SIGKILL. A no-op if not running."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            while self._proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed, the SQLite file is what remains."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    async def restart(self) -> Client:
        """Stop (gracefully if still running) and start again on the same file and ports."""
        await self.stop()
        return await self.start()

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _spawn(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._log.write(f"--- {stamp} signgate starts: {' '.join(cmd)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own session and process group: the terminal's Ctrl-C goes to us only.
            start_new_session=True,
        )

    async def _wait_ready(self) -> Client:
        deadline = time.monotonic() + self.start_timeout_s
        last_error = "no answer yet"
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise DevServerError(
                    f"the Temporal dev server exited with code {code} while starting "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DevServerError(
                    f"the Temporal dev server did not become ready on {self.address} within "
                    f"{self.start_timeout_s:.0f} s ({last_error}); log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            try:
                return await asyncio.wait_for(self._probe(), timeout=min(remaining, 5.0))
            except (TimeoutError, RuntimeError, OSError, TemporalUnreachable) as err:
                # TemporalUnreachable while nothing listens yet; RPCError (a
                # RuntimeError) while the server is still warming up.
                last_error = f"{type(err).__name__}: {err}"
            await asyncio.sleep(0.1)

    async def _probe(self) -> Client:
        client = await connect_client(
            self.address, self.namespace, payload_codec=self.payload_codec
        )
        await ensure_search_attributes(client)
        missing = await missing_search_attributes(client)
        if missing:
            raise RuntimeError(f"search attributes not visible yet: {[k.name for k in missing]}")
        return client

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the server wrote since the latest start."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError as err:
            return f"(cannot read {self.log_path}: {err})"
        return "\n".join(text.splitlines()[-lines:])
