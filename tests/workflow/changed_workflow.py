"""A deliberately changed copy of the onboarding workflow, for the replay tests only.

It calls the policy through a differently named activity: exactly the kind of change
that would break sessions already in flight if it shipped without `workflow.patched`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from signgate.models import (
        DecideRequest,
        Decision,
        OnboardingRequest,
        OnboardingResult,
        SealedEvidence,
    )
    from workflows.onboarding import OnboardingWorkflow


@workflow.defn(name="OnboardingWorkflow")
class ChangedOnboardingWorkflow(OnboardingWorkflow):
    @workflow.run
    async def run(self, request: OnboardingRequest) -> OnboardingResult:
        return await super().run(request)

    async def _policy_decision(self, sealed: SealedEvidence, step_ups: int) -> Decision:
        return await workflow.execute_activity(
            "decide_v2",
            DecideRequest(
                session_id=self._req.session_id,
                checks=self._checks,
                evidence_flags=sealed.flags,
                step_ups_done=step_ups,
            ),
            result_type=Decision,
            start_to_close_timeout=timedelta(seconds=30),
        )
