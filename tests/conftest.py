"""Temporal servers shared by the whole test session.

- `time_skipping_env`: the time-skipping test server (timers of days finish in
  milliseconds); for workflow tests. One per session: tests that use it must not run
  workflows concurrently with each other, since skipped time is global to the server.
- `dev_server`: the real `temporal server start-dev` on a SQLite file, headless, on free
  ports; for end-to-end and durability tests.

Both register our search attributes and use our data converter (pydantic + the payload
codec, with the fixed test key of `tests.support`). Both fixtures
live on the session event loop (pyproject sets session loop scope for tests and
fixtures), because a Temporal client is bound to the loop it was created on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import hypothesis
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.moto_s3 import moto_s3_url  # noqa: F401  (session-scoped S3 fixture)
from tests.support import payload_codec_for_tests
from workers.binaries import temporal_test_server_path
from workers.client import data_converter
from workers.devserver import DevServer
from workers.ports import free_port
from workers.search_attributes import ensure_search_attributes

# Property tests assert properties, not speed: on a loaded 2-core CI machine Hypothesis'
# "too slow" health check and per-example deadline would fail them for no fault of ours.
hypothesis.settings.register_profile(
    "signgate", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("signgate")

SERVER_START_TIMEOUT = timedelta(seconds=60)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_path()),
        test_server_startup_timeout=SERVER_START_TIMEOUT,
        data_converter=data_converter(payload_codec_for_tests()),
    )
    try:
        await ensure_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@dataclass
class RunningDevServer:
    """What `dev_server` yields. A test that kills the server must bring it back with
    `restart()` (also after a crash) before it ends: later tests share it."""

    server: DevServer
    client: Client

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def db_path(self) -> Path:
        return self.server.db_path

    async def restart(self) -> Client:
        """Restart on the same file and port; `client` is replaced by a fresh one."""
        self.client = await self.server.restart()
        return self.client


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningDevServer]:
    var_dir = tmp_path_factory.mktemp("temporal-dev")
    server = DevServer(
        db_path=var_dir / "temporal.db",
        port=free_port(),
        ui_port=None,
        start_timeout_s=SERVER_START_TIMEOUT.total_seconds(),
        payload_codec=payload_codec_for_tests(),
    )
    client = await server.start()
    try:
        yield RunningDevServer(server, client)
    finally:
        await server.stop()
