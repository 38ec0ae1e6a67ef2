"""A worker that goes away mid-session loses nothing: the next worker finishes the saga."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from signgate.models import OnboardingResult, OnboardingStatus, ReviewerRole, ReviewInput, Stage
from signgate.sandbox import create_sandbox_app
from signgate.settings import Settings
from signgate.signer import KeyRing
from tests.support import make_settings, onboarding_request, serve_app, store_capture
from workers.onboarding_worker import build_worker


async def test_worker_restarted_mid_session_reaches_the_same_outcome(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    probe = Settings()
    sandbox = create_sandbox_app(
        webhook_secret=probe.webhook_secrets[0], api_key=probe.vendor_api_key
    )
    async with serve_app(sandbox) as sandbox_url:
        settings = make_settings(tmp_path / "var", sandbox_url)
        client = time_skipping_env.client
        request = onboarding_request(settings)

        first_deps = ActivityDeps.from_settings(settings)
        # The Java time-skipping server never times out a dead worker's sticky queue
        # (the real server does, after sticky_queue_schedule_to_start_timeout), so the
        # first worker keeps no cache: every task goes back to the shared queue.
        async with build_worker(client, settings, first_deps, max_cached_workflows=0):
            handle = await client.start_workflow(
                "OnboardingWorkflow",
                request,
                id=f"onboarding-{request.session_id}",
                task_queue=settings.task_queue,
                result_type=OnboardingResult,
            )
            status = await handle.query("status", result_type=OnboardingStatus)
            submission, _ = store_capture(
                first_deps.store, request.session_id, "borderline", status.challenge_nonce
            )
            await handle.signal("evidence_submitted", submission)
            for _ in range(300):
                status = await handle.query("status", result_type=OnboardingStatus)
                if status.stage is Stage.awaiting_review:
                    break
                await asyncio.sleep(0.1)
            assert status.stage is Stage.awaiting_review
        await first_deps.aclose()

        # A brand-new worker process stand-in: new worker, new deps, same ledger and store.
        second_deps = ActivityDeps.from_settings(settings)
        try:
            async with build_worker(client, settings, second_deps):
                await handle.execute_update(
                    "review",
                    ReviewInput(
                        reviewer_id="rev-alice",
                        role=ReviewerRole.reviewer,
                        approve=True,
                        reason="checked by hand",
                    ),
                )
                result = await handle.result()
        finally:
            await second_deps.aclose()

    assert result.stage is Stage.accepted
    entries = second_deps.ledger.entries(request.session_id)
    assert [e.entry_type for e in entries] == [
        "evidence_sealed",
        "checks_completed",
        "review",
        "decision",
        "signing_unlocked",
    ]
    assert second_deps.ledger.verify(KeyRing.from_dir(settings.keys_dir)).ok
