"""A worker with the real activities, the real ledger and store, and the bundled vendor
sandbox over HTTP (the only double: it stands for a vendor we cannot reach), on the
time-skipping test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from signgate.models import (
    EvidenceSubmission,
    OnboardingRequest,
    OnboardingResult,
    OnboardingStatus,
)
from signgate.sandbox import create_sandbox_app
from signgate.settings import Settings
from tests.support import make_settings, onboarding_request, serve_app, store_capture
from workers.deliveries import app_deliveries
from workers.onboarding_worker import build_worker


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    deps: ActivityDeps
    handles: list[WorkflowHandle] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    async def start(
        self,
        *,
        task_queue: str | None = None,
        search_attributes: TypedSearchAttributes | None = None,
        **overrides: object,
    ) -> tuple[OnboardingRequest, WorkflowHandle]:
        """A new session (`overrides` go to its request), on our worker's task queue
        unless another is named, started with `search_attributes` when given (as the
        gateway starts them)."""
        request = onboarding_request(self.settings, **overrides)
        handle = await self.client.start_workflow(
            "OnboardingWorkflow",
            request,
            id=f"onboarding-{request.session_id}",
            task_queue=task_queue or self.settings.task_queue,
            result_type=OnboardingResult,
            search_attributes=search_attributes or TypedSearchAttributes.empty,
        )
        self.handles.append(handle)
        return request, handle

    async def terminate_leftovers(self) -> None:
        """A parked workflow whose worker is gone stops the test server skipping time
        for every later test, so each test's unfinished sessions end with it."""
        for handle in self.handles:
            # Status-event deliveries outlive their session (ABANDON): end them too.
            children = [
                self.client.get_workflow_handle(child.workflow_id)
                for child in await app_deliveries(self.client, handle.id)
            ]
            for each in [handle, *children]:
                description = await each.describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    await each.terminate("test finished")

    async def status(self, handle: WorkflowHandle) -> OnboardingStatus:
        return await handle.query("status", result_type=OnboardingStatus)

    async def submit(
        self, handle: WorkflowHandle, session_id: str, scenario: str
    ) -> EvidenceSubmission:
        status = await self.status(handle)
        submission, _ = store_capture(self.deps.store, session_id, scenario, status.challenge_nonce)
        await handle.signal("evidence_submitted", submission)
        return submission


@pytest_asyncio.fixture(loop_scope="session")
async def stack(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    settings_probe = Settings()
    app = create_sandbox_app(
        webhook_secret=settings_probe.webhook_secrets[0],
        api_key=settings_probe.vendor_api_key,
        webhook_delay_s=0.2,
    )
    async with serve_app(app) as sandbox_url:
        # The sandbox is a vendor: cheap-first is switched on so the saga's cheap-first
        # paths (and their golden histories) run here too.
        settings = make_settings(
            tmp_path / "var",
            sandbox_url,
            callback_allowed_hosts=["127.0.0.1"],
            cheap_first_with_vendor=True,
        )
        deps = ActivityDeps.from_settings(settings)
        try:
            async with build_worker(time_skipping_env.client, settings, deps):
                stack = Stack(time_skipping_env, settings, deps)
                try:
                    yield stack
                finally:
                    await stack.terminate_leftovers()
        finally:
            await deps.aclose()
