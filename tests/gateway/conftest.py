"""The gateway over real HTTP on loopback, in front of the real dev server and a real worker.

The only double is the bundled vendor sandbox (the vendor we cannot reach). The gateway is
run by `gateway.server.serve`, the same way `signgate dev` runs it, on the port the
settings name, so the worker's webhook callback URL reaches it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from activities.deps import ActivityDeps
from gateway.server import serve
from signgate.api_keys import KeyStore, key_store_path
from signgate.models import ArtifactKind, ArtifactRef, OnboardingStatus, Stage
from signgate.sample_media import mp4_bytes
from signgate.sandbox import create_sandbox_app
from signgate.settings import Role, Settings, WebhookVendor
from tests.conftest import RunningDevServer
from tests.support import CAPTURE_KINDS, jpeg_bytes, make_settings, serve_app
from workers.onboarding_worker import build_worker

# Test keys: the fixture stores their hashes in the key store, as `signgate keys` would.
APP_KEY = "test-app-key-demo-tenant"
OTHER_TENANT_APP_KEY = "test-app-key-other-tenant"
REVIEWER_KEY = "test-reviewer-key-alice"
SENIOR_KEY = "test-senior-key-bob"
SECOND_REVIEWER_KEY = "test-reviewer-key-erin"
OPS_KEY = "test-ops-key-carol"
ADMIN_KEY = "test-admin-key-dana"
REVOKED_KEY = "test-revoked-app-key"
# (key, tenant, principal, roles)
TEST_KEYS: tuple[tuple[str, str, str, tuple[Role, ...]], ...] = (
    (APP_KEY, "demo", "demo-app", ("app",)),
    (OTHER_TENANT_APP_KEY, "other", "other-app", ("app",)),
    (REVIEWER_KEY, "demo", "rev-alice", ("reviewer",)),
    (SENIOR_KEY, "demo", "rev-bob", ("senior_reviewer",)),
    (SECOND_REVIEWER_KEY, "demo", "rev-erin", ("reviewer",)),
    (OPS_KEY, "demo", "ops-carol", ("ops",)),
    (ADMIN_KEY, "demo", "admin-dana", ("admin",)),
    (REVOKED_KEY, "demo", "revoked-app", ("app",)),
)
DEVICE_SIGNALS_CAP = 1024  # small, so "too large" needs no large body
# One vendor per inbound scheme, each with two secrets (a rotation in progress).
WEBHOOK_VENDORS = {
    "vendor": WebhookVendor(),
    "persona": WebhookVendor(scheme="persona", secrets=["persona-new", "persona-old"]),
    "onfido": WebhookVendor(scheme="onfido", secrets=["onfido-new", "onfido-old"]),
}


@dataclass
class GatewayStack:
    settings: Settings
    deps: ActivityDeps
    base_url: str
    temporal: RunningDevServer

    def http(self, key: str | None = APP_KEY, **headers: str) -> httpx.AsyncClient:
        if key is not None:
            headers["X-API-Key"] = key
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30.0)

    async def create_session(self, **body: Any) -> dict[str, Any]:
        async with self.http() as http:
            response = await http.post(
                "/v1/sessions", json={"subject_ref": "user-42", "intent": "sign:nda", **body}
            )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def upload(self, session_id: str, kind: ArtifactKind, data: bytes) -> ArtifactRef:
        video = kind is ArtifactKind.liveness_video
        async with self.http() as http:
            response = await http.put(
                f"/v1/sessions/{session_id}/evidence/{kind.value}",
                content=data,
                headers={
                    "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
                    "Content-Type": "video/mp4" if video else "image/jpeg",
                },
            )
        assert response.status_code == 201, response.text
        return ArtifactRef.model_validate(response.json())

    async def capture(self, session_id: str, nonce: str, scenario: str) -> None:
        """Upload one fresh capture round and submit it for `scenario`."""
        refs = [
            await self.upload(session_id, kind, capture_media(session_id, kind))
            for kind in CAPTURE_KINDS
        ]
        body = {
            "artifacts": [ref.model_dump(mode="json") for ref in refs],
            "capture": {"challenge_nonce": nonce, "scenario": scenario},
        }
        async with self.http() as http:
            response = await http.post(f"/v1/sessions/{session_id}/submit", json=body)
        assert response.status_code == 202, response.text

    async def status(self, session_id: str, key: str = OPS_KEY) -> OnboardingStatus:
        async with self.http(key) as http:
            response = await http.get(f"/v1/sessions/{session_id}")
        assert response.status_code == 200, response.text
        return OnboardingStatus.model_validate(response.json())

    async def wait_until(
        self, session_id: str, done: Any, what: str, limit_s: float = 30.0
    ) -> OnboardingStatus:
        """Poll status (bounded, real time) until `done(status)` holds."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            status = await self.status(session_id)
            if done(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what} never happened; stage {status.stage.value}")
            await asyncio.sleep(0.1)

    async def wait_for_stage(self, session_id: str, *stages: Stage) -> OnboardingStatus:
        return await self.wait_until(
            session_id, lambda s: s.stage in stages, f"stage in {[s.value for s in stages]}"
        )


@asynccontextmanager
async def gateway_stack(
    dev_server: RunningDevServer,
    var_dir: Path,
    make_client: Callable[[Settings], Awaitable[Client]] | None = None,
    **overrides: Any,
) -> AsyncIterator[GatewayStack]:
    """The whole stack on `dev_server`: the vendor sandbox, a worker, the gateway over HTTP.

    `overrides` are extra settings (limits, S3, PostgreSQL); the test keys are seeded.
    `make_client` builds the Temporal client the worker and gateway use from the settings
    (default: the dev server's shared client).
    """
    probe = Settings()
    sandbox = create_sandbox_app(
        webhook_secret=probe.webhook_secrets[0], api_key=probe.vendor_api_key, webhook_delay_s=0.2
    )
    async with serve_app(sandbox) as sandbox_url:
        settings = make_settings(var_dir, sandbox_url, **overrides)
        seed_test_keys(settings)
        client = dev_server.client if make_client is None else await make_client(settings)
        deps = ActivityDeps.from_settings(settings)
        stop = asyncio.Event()
        serving = asyncio.create_task(serve(settings, stop, client=client))
        try:
            async with build_worker(client, settings, deps):
                await _wait_healthy(settings.gateway_url, serving)
                yield GatewayStack(settings, deps, settings.gateway_url, dev_server)
        finally:
            stop.set()
            await asyncio.wait_for(serving, timeout=20)
            await deps.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gw(
    dev_server: RunningDevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayStack]:
    async with gateway_stack(
        dev_server,
        tmp_path_factory.mktemp("gateway") / "var",
        max_upload_bytes={
            **Settings().max_upload_bytes,
            ArtifactKind.device_signals: DEVICE_SIGNALS_CAP,
        },
        webhook_vendors=WEBHOOK_VENDORS,
        callback_allowed_hosts=["app.example.com"],
    ) as stack:
        yield stack


def capture_media(session_id: str, kind: ArtifactKind) -> bytes:
    """What a capture SDK sends: a JPEG for a photo, an MP4 for the liveness video."""
    if kind is ArtifactKind.liveness_video:
        return mp4_bytes(f"{session_id}:{kind}")
    return jpeg_bytes(f"{session_id}:{kind}")


def seed_test_keys(settings: Settings) -> None:
    store = KeyStore(key_store_path(settings.var_dir))
    for key, tenant, principal, roles in TEST_KEYS:
        stored = store.register(key, tenant, principal, roles)
        if key == REVOKED_KEY:
            store.revoke(stored.key_id)


async def _wait_healthy(url: str, serving: asyncio.Task[None]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        for _ in range(200):
            if serving.done():
                serving.result()
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("gateway did not answer /healthz within 10 s")
