"""The onboarding workflow as sessions started before `BASELINE_2026_12` run it: each
change asked for with its own `workflow.patched`, one marker per change.

Only replay reaches that path in production (a session in flight since before the
baseline); this copy lets a test drive it live. It still records the baseline's marker
first, which changes nothing for the markers that follow.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from signgate.models import OnboardingRequest, OnboardingResult
    from workflows.onboarding import REVIEWER_STEP_UP, OnboardingWorkflow


@workflow.defn(name="OnboardingWorkflow")
class PreBaselineOnboardingWorkflow(OnboardingWorkflow):
    @workflow.run
    async def run(self, request: OnboardingRequest) -> OnboardingResult:
        return await super().run(request)

    def _patched(self, patch_id: str) -> bool:
        return workflow.patched(patch_id)


@workflow.defn(name="OnboardingWorkflow")
class BeforeReviewerStepUpWorkflow(PreBaselineOnboardingWorkflow):
    """As sessions started before `reviewer-step-up` run: that patch answers False."""

    @workflow.run
    async def run(self, request: OnboardingRequest) -> OnboardingResult:
        return await super().run(request)

    def _patched(self, patch_id: str) -> bool:
        return patch_id != REVIEWER_STEP_UP and workflow.patched(patch_id)
