"""A reviewer answers "request step-up": a fresh capture, decided again (time-skipping)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from signgate.models import (
    Action,
    ReviewerRole,
    ReviewInput,
    ReviewOutcome,
    SessionTimeouts,
    Stage,
)
from tests.support import record_history
from tests.workflow.conftest import Stack
from tests.workflow.pre_baseline_workflow import BeforeReviewerStepUpWorkflow
from tests.workflow.test_onboarding_saga import (
    in_review,
    ledger_types,
    older_sessions,
    refused_review,
    step_up,
    wait_for_stage,
)


async def ask_for_step_up(handle: Any, review: ReviewInput | None = None) -> ReviewOutcome:
    outcome: ReviewOutcome = await handle.execute_update(
        "review", review or step_up(), result_type=ReviewOutcome
    )
    return outcome


async def test_reviewer_step_up_takes_a_fresh_capture_that_is_then_accepted(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    first_nonce = (await stack.status(handle)).challenge_nonce

    outcome = await ask_for_step_up(handle)
    assert outcome.step_up_requested and not outcome.decision_final
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    status = await stack.status(handle)
    assert status.challenge_nonce != first_nonce  # a fresh challenge for the new capture
    assert status.pending == ["capture"]
    assert status.decision is not None and status.decision.action is Action.step_up
    assert status.decision.decided_by == "reviewer:rev-alice"

    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    await record_history(handle, "reviewer_step_up_then_accept")

    assert result.stage is Stage.accepted and result.attestation is not None
    assert len(result.merkle_roots) == 2
    assert result.decision is not None and result.decision.decided_by != "reviewer:rev-alice"
    entries = stack.deps.ledger.entries(request.session_id)
    types = [e.entry_type for e in entries]
    assert types == [
        "evidence_sealed",
        "checks_completed",
        "review",
        "evidence_sealed",
        "checks_completed",
        "decision",
        "signing_unlocked",
    ]
    asked = entries[2].body
    assert (asked["reviewer_id"], asked["role"], asked["step_up"], asked["approve"]) == (
        "rev-alice",
        "reviewer",
        True,
        False,
    )
    assert asked["reason"].startswith("selfie is blurred")
    decision = next(e for e in entries if e.entry_type == "decision").body
    assert [r["step_up"] for r in decision["reviews"]] == [True]


async def test_a_step_up_nobody_answers_rejects_the_session(stack: Stack) -> None:
    # A step-up timeout of seconds: the session ends even when the test server does not
    # skip time (a full run once waited 300 s here for it to skip 600).
    timeouts = SessionTimeouts(
        capture_s=600, vendor_webhook_s=120, step_up_s=3, review_sla_s=3600, review_final_s=7200
    )
    request, handle = await stack.start(timeouts=timeouts)
    await stack.submit(handle, request.session_id, "borderline")
    await wait_for_stage(stack, handle, Stage.awaiting_review)
    await ask_for_step_up(handle)
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)

    # Nobody captures.
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.stage is Stage.rejected and result.attestation is None
    assert result.decision is not None and result.decision.action is Action.reject
    assert result.decision.reasons[-2:] == ["reviewer_step_up", "step_up_timeout"]
    assert result.decision.decided_by == "timeout"
    assert ledger_types(stack, request.session_id)[-2:] == ["review", "decision"]


async def test_after_a_step_up_the_next_review_counts_only_new_verdicts(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    await ask_for_step_up(handle)
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    await stack.submit(handle, request.session_id, "borderline")
    await wait_for_stage(stack, handle, Stage.awaiting_review)

    # The one step-up is spent: the validator refuses another, with its reason code.
    cause = await refused_review(handle, step_up("rev-bob", ReviewerRole.senior_reviewer))
    assert isinstance(cause, ApplicationError) and cause.type == "step_up_limit_reached"

    # The reviewer who asked may now decide on the new evidence, as a new ledger entry.
    approval = ReviewInput(
        reviewer_id="rev-alice",
        role=ReviewerRole.reviewer,
        approve=True,
        reason="the new capture is sharp and matches",
    )
    outcome = await handle.execute_update("review", approval, result_type=ReviewOutcome)
    assert outcome.decision_final and not outcome.step_up_requested
    result = await handle.result()
    assert result.stage is Stage.accepted
    assert result.decision is not None and result.decision.decided_by == "reviewer:rev-alice"
    reviews = [
        (e.body["step_up"], e.body["approve"])
        for e in stack.deps.ledger.entries(request.session_id)
        if e.entry_type == "review"
    ]
    assert reviews == [(True, False), (False, True)]


async def test_a_policy_step_up_leaves_no_step_up_for_the_reviewer(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_review)

    cause = await refused_review(handle, step_up())
    assert isinstance(cause, ApplicationError) and cause.type == "step_up_limit_reached"
    status = await stack.status(handle)
    assert status.stage is Stage.awaiting_review and status.reviews == []
    assert "review" not in ledger_types(stack, request.session_id)


async def test_no_verdict_is_taken_once_a_step_up_was_requested(stack: Stack) -> None:
    _, handle = await in_review(stack, "live_but_deepfake_suspect")
    first = ReviewInput(
        reviewer_id="rev-alice", role=ReviewerRole.reviewer, approve=True, reason="looks fine"
    )
    partial = await handle.execute_update("review", first, result_type=ReviewOutcome)
    assert partial.approvals_needed == 1  # red tier: a second, senior approval is needed
    await ask_for_step_up(handle, step_up("rev-bob", ReviewerRole.senior_reviewer))
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    late = ReviewInput(
        reviewer_id="rev-bob", role=ReviewerRole.senior_reviewer, approve=True, reason="too late"
    )
    assert "not awaiting review" in str(await refused_review(handle, late))


async def test_a_verdict_and_a_step_up_sent_at_once_only_one_is_taken(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    approval = ReviewInput(
        reviewer_id="rev-bob", role=ReviewerRole.senior_reviewer, approve=True, reason="fine"
    )
    answers = await asyncio.gather(
        handle.execute_update("review", approval, result_type=ReviewOutcome),
        ask_for_step_up(handle),
        return_exceptions=True,
    )
    taken = [a for a in answers if isinstance(a, ReviewOutcome)]
    refused = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
    assert len(taken) == 1 and len(refused) == 1, answers
    status = await stack.status(handle)
    [review] = status.reviews
    assert review.step_up is taken[0].step_up_requested
    assert ledger_types(stack, request.session_id).count("review") == 1
    if review.step_up:
        await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    else:
        assert (await handle.result()).stage is Stage.accepted


async def test_a_session_from_before_reviewer_step_ups_refuses_one(stack: Stack) -> None:
    """A session started before the `reviewer-step-up` patch (driven live through a copy of
    the workflow as those sessions run it) refuses a reviewer's step-up with its reason
    code, and still takes a verdict."""
    async with older_sessions(stack, BeforeReviewerStepUpWorkflow) as start:
        request, handle = await start()
        await stack.submit(handle, request.session_id, "borderline")
        await wait_for_stage(stack, handle, Stage.awaiting_review)

        cause = await refused_review(handle, step_up())
        assert isinstance(cause, ApplicationError) and cause.type == "step_up_unavailable"
        approval = step_up().model_copy(update={"step_up": False, "approve": True})
        outcome = await handle.execute_update("review", approval, result_type=ReviewOutcome)
        assert outcome.accepted_review and not outcome.step_up_requested
        result = await handle.result()
    assert result.stage is Stage.accepted
    assert ledger_types(stack, request.session_id)[-3:] == [
        "review",
        "decision",
        "signing_unlocked",
    ]
