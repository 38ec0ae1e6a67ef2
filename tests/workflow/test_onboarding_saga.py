"""The saga on the time-skipping server: every path, every safe branch, every invariant."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities import all_activities
from gateway.onboarding import ONBOARDING_STATUS, TENANT_ID, start_search_attributes
from signgate.attestation import verify_attestation
from signgate.models import (
    Action,
    CheckKind,
    CheckRequest,
    CheckStatus,
    OnboardingRequest,
    ReviewerRole,
    ReviewInput,
    ReviewOutcome,
    Stage,
)
from signgate.signer import KeyRing
from tests.support import (
    free_port,
    payload_codec_for_tests,
    record_history,
    store_capture,
    sub_messages,
)
from tests.workflow.conftest import Stack
from tests.workflow.pre_baseline_workflow import PreBaselineOnboardingWorkflow
from workers.onboarding_worker import single_batch_activations, workflow_runner
from workflows.app_events import AppEventWorkflow


async def wait_for_stage(stack: Stack, handle, *stages: Stage, limit_s: float = 30) -> None:
    """Poll the status query (real time, bounded) until the saga reaches a stage."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        status = await stack.status(handle)
        if status.stage in stages:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"stage {status.stage} never became one of {stages}")


async def in_review(stack: Stack, scenario: str) -> tuple[OnboardingRequest, Any]:
    """A new session whose capture (of `scenario`) has brought it to awaiting_review."""
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, scenario)
    await wait_for_stage(stack, handle, Stage.awaiting_review)
    return request, handle


def step_up(reviewer: str = "rev-alice", role: ReviewerRole = ReviewerRole.reviewer) -> ReviewInput:
    """A reviewer's answer "capture again" (`reviewer-step-up`)."""
    return ReviewInput(
        reviewer_id=reviewer,
        role=role,
        approve=False,
        step_up=True,
        reason="selfie is blurred at the jaw: capture again",
    )


async def refused_review(handle: Any, review: ReviewInput) -> BaseException:
    """Why the `review` Update was refused (the test fails here if it was taken)."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("review", review, result_type=ReviewOutcome)
    assert refused.value.cause is not None
    return refused.value.cause


@asynccontextmanager
async def older_sessions(
    stack: Stack, workflow_class: type
) -> AsyncIterator[Callable[..., Awaitable[tuple[OnboardingRequest, Any]]]]:
    """A worker running `workflow_class` (a copy of the workflow as older sessions run it,
    `tests/workflow/pre_baseline_workflow.py`) on its own task queue, and a function that
    starts a session there."""
    queue = f"{stack.settings.task_queue}-{workflow_class.__name__}"
    worker = Worker(
        stack.client,
        task_queue=queue,
        workflows=[workflow_class, AppEventWorkflow],
        activities=all_activities(stack.deps),
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=8),
        workflow_runner=workflow_runner(),
    )

    async def start(**overrides: object) -> tuple[OnboardingRequest, Any]:
        return await stack.start(task_queue=queue, **overrides)

    async with single_batch_activations(worker):
        yield start


def ledger_types(stack: Stack, session_id: str) -> list[str]:
    return [e.entry_type for e in stack.deps.ledger.entries(session_id)]


async def test_bona_fide_capture_is_accepted_and_unlocked_after_commit(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    await record_history(handle, "accept_bona_fide")

    assert result.stage is Stage.accepted
    assert result.decision is not None and result.decision.action is Action.accept
    types = ledger_types(stack, request.session_id)
    assert types == ["evidence_sealed", "checks_completed", "decision", "signing_unlocked"]
    claims = verify_attestation(result.attestation or "", KeyRing.from_dir(stack.settings.keys_dir))
    decision_entry = stack.deps.ledger.get(claims.ledger_seq)
    assert decision_entry is not None and decision_entry.entry_type == "decision"
    assert claims.ledger_entry_hash == decision_entry.entry_hash
    assert claims.evidence_merkle_root == result.merkle_roots[-1]


async def test_deepfake_capture_is_rejected_and_never_unlocked(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "deepfake")
    result = await handle.result()
    await record_history(handle, "reject_deepfake")

    assert result.stage is Stage.rejected
    assert result.attestation is None
    assert "signing_unlocked" not in ledger_types(stack, request.session_id)


async def test_silent_vendor_makes_checks_unavailable_and_sends_session_to_review(
    stack: Stack,
) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "no_webhook")
    await wait_for_stage(stack, handle, Stage.checking)
    await stack.env.sleep(timedelta(seconds=request.timeouts.vendor_webhook_s + 5))
    await wait_for_stage(stack, handle, Stage.awaiting_review)

    status = await stack.status(handle)
    assert {c.status for c in status.checks} == {CheckStatus.unavailable}
    assert {c.reason for c in status.checks} == {"vendor_timeout"}
    assert status.decision is not None and status.decision.action is Action.review

    result = await handle.result()
    await record_history(handle, "vendor_timeout_then_review_timeout")
    assert result.stage is Stage.rejected and result.attestation is None


async def test_reviewer_rejection_rejects_and_never_unlocks(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    outcome = await handle.execute_update(
        "review",
        ReviewInput(
            reviewer_id="rev-alice",
            role=ReviewerRole.reviewer,
            approve=False,
            reason="ID photo is a different person",
        ),
        result_type=ReviewOutcome,
    )
    assert outcome.decision_final
    result = await handle.result()
    await record_history(handle, "review_rejected_borderline")

    assert result.stage is Stage.rejected
    assert result.decision is not None
    assert result.decision.reasons[-1] == "reviewer_rejected"
    assert result.decision.decided_by == "reviewer:rev-alice"
    types = ledger_types(stack, request.session_id)
    assert types[-2:] == ["review", "decision"]


async def test_vendor_outage_never_accepts(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "vendor_down")
    result = await handle.result()

    # Nobody reviewed: the outage ends in a rejection on review timeout, never an accept.
    assert result.stage is Stage.rejected
    assert result.decision is not None
    assert "review_timeout" in result.decision.reasons
    entry = stack.deps.ledger.entries(request.session_id)
    checks = next(e for e in entry if e.entry_type == "checks_completed").body["checks"]
    assert {c["status"] for c in checks} == {"unavailable"}


async def test_unanswered_review_is_escalated_then_rejected_not_accepted(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    await stack.env.sleep(timedelta(seconds=request.timeouts.review_sla_s + 1))
    await wait_for_stage(stack, handle, Stage.escalated)

    result = await handle.result()
    await record_history(handle, "review_timeout_borderline")
    assert result.stage is Stage.rejected
    assert result.decision is not None
    assert result.decision.action is Action.reject
    assert result.decision.reasons[-1] == "review_timeout"
    assert result.attestation is None


async def test_capture_that_never_comes_expires_the_session(stack: Stack) -> None:
    request, handle = await stack.start()
    result = await handle.result()
    await record_history(handle, "expired_no_capture")

    assert result.stage is Stage.expired
    assert result.decision is None
    assert ledger_types(stack, request.session_id) == ["expired"]


async def test_reviewer_approval_unlocks_a_borderline_session(stack: Stack) -> None:
    request, handle = await in_review(stack, "borderline")
    outcome = await handle.execute_update(
        "review",
        ReviewInput(
            reviewer_id="rev-alice",
            role=ReviewerRole.reviewer,
            approve=True,
            reason="selfie matches the ID photo",
        ),
        result_type=ReviewOutcome,
    )
    assert outcome.decision_final
    result = await handle.result()
    await record_history(handle, "review_approved_borderline")

    assert result.stage is Stage.accepted
    assert result.decision is not None and result.decision.decided_by == "reviewer:rev-alice"
    types = ledger_types(stack, request.session_id)
    assert types.index("review") < types.index("decision") < types.index("signing_unlocked")


@pytest.mark.parametrize(
    ("review", "message"),
    [
        (
            ReviewInput(
                reviewer_id="rev-mallory",
                role=ReviewerRole.reviewer,
                approve=True,
                reason="looks fine",
            ),
            "unknown reviewer",
        ),
        (
            ReviewInput(
                reviewer_id="rev-alice",
                role=ReviewerRole.senior_reviewer,
                approve=True,
                reason="looks fine",
            ),
            "does not hold role",
        ),
    ],
)
async def test_review_validator_refuses_unknown_reviewer_and_wrong_role(
    stack: Stack, review: ReviewInput, message: str
) -> None:
    request, handle = await in_review(stack, "borderline")
    assert message in str(await refused_review(handle, review))
    assert (await stack.status(handle)).reviews == []
    assert "review" not in ledger_types(stack, request.session_id)


async def test_review_refused_when_session_is_not_awaiting_review(stack: Stack) -> None:
    _, handle = await stack.start()
    early = ReviewInput(
        reviewer_id="rev-alice", role=ReviewerRole.reviewer, approve=True, reason="too early"
    )
    assert "not awaiting review" in str(await refused_review(handle, early))


async def test_red_tier_override_needs_two_distinct_reviewers_one_senior(stack: Stack) -> None:
    request, handle = await in_review(stack, "live_but_deepfake_suspect")
    first = ReviewInput(
        reviewer_id="rev-alice",
        role=ReviewerRole.reviewer,
        approve=True,
        reason="video looks genuine",
    )
    outcome = await handle.execute_update("review", first, result_type=ReviewOutcome)
    assert not outcome.decision_final and outcome.approvals_needed == 1

    assert "already reviewed" in str(await refused_review(handle, first))

    senior = ReviewInput(
        reviewer_id="rev-bob",
        role=ReviewerRole.senior_reviewer,
        approve=True,
        reason="second look agrees",
    )
    outcome = await handle.execute_update("review", senior, result_type=ReviewOutcome)
    assert outcome.decision_final
    result = await handle.result()
    assert result.stage is Stage.accepted
    assert result.decision is not None
    assert result.decision.decided_by == "reviewer:rev-alice,reviewer:rev-bob"


async def test_poor_capture_steps_up_once_then_a_fresh_capture_is_accepted(stack: Stack) -> None:
    request, handle = await stack.start()
    first_nonce = (await stack.status(handle)).challenge_nonce
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    step_up_nonce = (await stack.status(handle)).challenge_nonce
    assert step_up_nonce != first_nonce  # the step-up issues a fresh challenge
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    await record_history(handle, "step_up_then_accept")

    assert result.stage is Stage.accepted
    assert len(result.merkle_roots) == 2
    flags_per_round = [
        e.body["flags"]
        for e in stack.deps.ledger.entries(request.session_id)
        if e.entry_type == "evidence_sealed"
    ]
    assert flags_per_round == [[], []]  # both rounds echoed their own fresh challenge


async def test_second_poor_capture_goes_to_review_not_another_step_up(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_review)
    assert (await stack.status(handle)).round == 2


async def test_replayed_capture_from_another_session_is_rejected(stack: Stack) -> None:
    first, first_handle = await stack.start()
    submission = await stack.submit(first_handle, first.session_id, "bona_fide")
    await first_handle.result()

    second, handle = await stack.start()
    status = await stack.status(handle)
    replay = submission.model_copy(
        update={
            "capture": submission.capture.model_copy(
                update={"challenge_nonce": status.challenge_nonce}
            )
        }
    )
    await handle.signal("evidence_submitted", replay)
    result = await handle.result()
    assert result.stage is Stage.rejected
    sealed = next(
        e for e in stack.deps.ledger.entries(second.session_id) if e.entry_type == "evidence_sealed"
    )
    assert "replayed_capture" in sealed.body["flags"]


async def test_raw_media_never_enters_a_temporal_payload(stack: Stack) -> None:
    request, handle = await stack.start()
    status = await stack.status(handle)
    submission, media = store_capture(
        stack.deps.store, request.session_id, "bona_fide", status.challenge_nonce
    )
    await handle.signal("evidence_submitted", submission)
    await handle.result()

    history = await handle.fetch_history()
    payloads = b"\n".join(data for event in history.events for data in payload_data(event))
    assert len(payloads) > 1000  # the walk found the real payloads
    for data in media.values():
        for offset in range(0, len(data) - 32, max(1, len(data) // 8)):
            chunk = data[offset : offset + 32]
            assert chunk not in payloads
            assert base64.b64encode(chunk) not in payloads
    for ref in submission.artifacts:
        assert ref.sha256.encode() in payloads  # what travels instead: hashes and keys


def payload_data(message: Message) -> Iterator[bytes]:
    """Every Payload's bytes anywhere inside a history event (a protobuf walk), decrypted
    (the history holds them encrypted by the payload codec)."""
    if isinstance(message, Payload):
        yield payload_codec_for_tests().decrypt(message).data
        return
    for item in sub_messages(message):
        yield from payload_data(item)


def astronaut_jpeg(quality: int, scale: float = 1.0) -> bytes:
    """A real public-domain photo (scikit-image's astronaut), encoded as asked."""
    import io

    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut())
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


async def test_near_duplicate_selfie_from_another_session_is_flagged_and_rejected(
    stack: Stack,
) -> None:
    from signgate.models import ArtifactKind, CaptureMetadata, EvidenceSubmission

    async def submit_selfie(handle: object, jpeg: bytes) -> None:
        status = await stack.status(handle)
        ref = stack.deps.store.put_bytes(ArtifactKind.selfie, jpeg, content_type="image/jpeg")
        await handle.signal(  # type: ignore[attr-defined]
            "evidence_submitted",
            EvidenceSubmission(
                artifacts=[ref], capture=CaptureMetadata(challenge_nonce=status.challenge_nonce)
            ),
        )

    _, first = await stack.start()
    await submit_selfie(first, astronaut_jpeg(quality=92))
    assert (await first.result()).stage is Stage.accepted

    second_request, second = await stack.start()
    # Different bytes (re-encoded, resized): only the perceptual hash can tell.
    await submit_selfie(second, astronaut_jpeg(quality=70, scale=0.9))
    result = await second.result()

    assert result.stage is Stage.rejected
    sealed = next(
        e
        for e in stack.deps.ledger.entries(second_request.session_id)
        if e.entry_type == "evidence_sealed"
    )
    assert sealed.body["flags"] == ["replayed_capture"]
    assert any("selfie" in line for line in sealed.body["replay_explanations"])


async def test_shadow_mode_unlocks_a_deepfake_and_records_the_would_be_reject(
    stack: Stack,
) -> None:
    from signgate.models import Mode

    request, handle = await stack.start(mode=Mode.shadow)
    await stack.submit(handle, request.session_id, "deepfake")
    result = await handle.result()
    await record_history(handle, "shadow_deepfake_unlocked")

    entries = stack.deps.ledger.entries(request.session_id)
    decision = next(e for e in entries if e.entry_type == "decision")
    assert decision.body["mode"] == "shadow"
    assert decision.body["decision"]["action"] == "reject"
    assert [e.entry_type for e in entries][-2:] == ["decision", "signing_unlocked"]
    claims = verify_attestation(result.attestation or "", KeyRing.from_dir(stack.settings.keys_dir))
    assert claims.mode is Mode.shadow and claims.decision is Action.reject
    assert claims.ledger_seq == decision.seq


async def test_shadow_mode_never_waits_for_a_reviewer(stack: Stack) -> None:
    from signgate.models import Mode

    request, handle = await stack.start(mode=Mode.shadow)
    await stack.submit(handle, request.session_id, "borderline")
    result = await handle.result()

    assert result.decision is not None and result.decision.action is Action.review
    assert result.attestation is not None
    assert "review" not in ledger_types(stack, request.session_id)


async def test_enforce_attestations_say_enforce(stack: Stack) -> None:
    from signgate.models import Mode

    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    claims = verify_attestation(result.attestation or "", KeyRing.from_dir(stack.settings.keys_dir))
    assert claims.mode is Mode.enforce and claims.decision is Action.accept


async def test_activity_log_lines_name_the_workflow_and_run(stack: Stack) -> None:
    import io

    from fastapi import FastAPI, Response

    from signgate.logs import configure_logging
    from tests.support import serve_app

    captured = io.StringIO()
    configure_logging(json_logs=True, stream=captured)
    try:
        # The app refuses the event (410, never retried): the delivery activity logs it.
        receiver = FastAPI()
        receiver.add_api_route("/cb", lambda: Response(status_code=410), methods=["POST"])
        async with serve_app(receiver) as url:
            request, handle = await stack.start(callback_url=f"{url}/cb")
            await stack.submit(handle, request.session_id, "bona_fide")
            assert (await handle.result()).stage is Stage.accepted
            delivery = stack.client.get_workflow_handle(f"app-event-{request.session_id}:decision")
            await asyncio.wait_for(delivery.result(), timeout=30)
        run_id = (await delivery.describe()).run_id
    finally:
        configure_logging()
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    failed = [line for line in lines if line.get("event") == "app_event_delivery_failed"]
    failed = [line for line in failed if line["workflow_id"] == delivery.id]
    assert failed, captured.getvalue()[-500:]
    assert failed[0]["run_id"] == run_id
    assert failed[0]["activity"] == "deliver_app_event"
    assert failed[0]["reason"] == "callback_refused"


async def test_each_capture_round_gets_a_random_motion_challenge_passed_to_liveness(
    stack: Stack,
) -> None:
    request, handle = await stack.start()
    first = (await stack.status(handle)).motion_challenge
    await stack.submit(handle, request.session_id, "poor_capture")
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    second = (await stack.status(handle)).motion_challenge
    await stack.submit(handle, request.session_id, "bona_fide")
    await handle.result()
    await record_history(handle, "motion_challenge_step_up_then_accept")

    for challenge in (first, second):
        assert len(challenge) == 2 and len(set(challenge)) == 2
        assert set(challenge) <= {"turn_left", "turn_right", "look_up"}
    # What each round's checks were asked, read from the history the workflow wrote.
    history = await handle.fetch_history()
    sent = [
        (await stack.client.data_converter.decode(attrs.input.payloads, [CheckRequest]))[0]
        for event in history.events
        if (attrs := event.activity_task_scheduled_event_attributes).activity_type.name
        == "check_liveness"
    ]
    assert [(s.round, list(s.motion_challenge)) for s in sent] == [(1, first), (2, second)]


async def test_motion_challenges_are_not_one_fixed_sequence(stack: Stack) -> None:
    seen = set()
    for _ in range(12):
        _, handle = await stack.start()
        seen.add(tuple((await stack.status(handle)).motion_challenge))
    # twelve sessions drawing from six orderings: all the same has odds (1/6)^11
    assert len(seen) > 1


def history_steps(history: Any) -> list[str]:
    """`activity:<name>`, `local:<name>` (`workflows.onboarding.LOCAL_STEPS`) and
    `patch:<id>` for each activity scheduled and each local-activity or patch marker, in
    history order."""
    steps = []
    for e in history.events:
        marker = e.marker_recorded_event_attributes
        if e.HasField("activity_task_scheduled_event_attributes"):
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            steps.append(f"activity:{name}")
        elif marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            steps.append(f"local:{data['activity_type']}")
        elif marker.marker_name == "core_patch":
            data = json.loads(marker.details["patch-data"].payloads[0].data)
            steps.append(f"patch:{data['id']}")
    return steps


def scheduled_activities(history: Any) -> list[str]:
    """Activities and local activities, by name, in history order."""
    return [
        step.partition(":")[2]
        for step in history_steps(history)
        if step.startswith(("activity:", "local:"))
    ]


async def test_a_replay_rejected_by_the_cheap_checks_skips_the_heavy_detectors(
    stack: Stack,
) -> None:
    first, first_handle = await stack.start()
    submission = await stack.submit(first_handle, first.session_id, "bona_fide")
    await first_handle.result()

    second, handle = await stack.start()
    status = await stack.status(handle)
    capture = submission.capture.model_copy(update={"challenge_nonce": status.challenge_nonce})
    await handle.signal("evidence_submitted", submission.model_copy(update={"capture": capture}))
    result = await handle.result()
    await record_history(handle, "cheap_first_replay_rejected")

    assert result.stage is Stage.rejected and result.decision is not None
    assert "replayed_capture" in result.decision.reasons
    ran = scheduled_activities(await handle.fetch_history())
    assert {"check_provenance", "check_device"} <= set(ran)
    assert not {"check_liveness", "check_deepfake", "check_face_match"} & set(ran)
    checks = next(
        e
        for e in stack.deps.ledger.entries(second.session_id)
        if e.entry_type == "checks_completed"
    ).body["checks"]
    skipped = {c["kind"]: (c["status"], c["reason"]) for c in checks if c["reason"]}
    assert skipped == {
        kind: ("unavailable", "skipped_after_conclusive_cheap_checks")
        for kind in ("liveness", "deepfake", "face_match")
    }


async def test_inconclusive_cheap_checks_run_the_heavy_ones_after_them(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    assert result.stage is Stage.accepted

    ran = scheduled_activities(await handle.fetch_history())
    cheap_done = ran.index("decide")  # the early look at the cheap checks
    assert set(ran[:cheap_done]) >= {"check_provenance", "check_device", "plan_checks"}
    assert {"check_liveness", "check_deepfake", "check_face_match"} <= set(ran[cheap_done:])
    assert ran.count("decide") == 2


def published_stages(history: Any) -> list[str]:
    """The OnboardingStatus values the history upserted, in order."""
    from temporalio.converter import decode_typed_search_attributes

    from workflows.search_attributes import ONBOARDING_STATUS

    stages = []
    for e in history.events:
        if e.HasField("upsert_workflow_search_attributes_event_attributes"):
            attrs = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            value = decode_typed_search_attributes(attrs).get(ONBOARDING_STATUS)
            if value is not None:
                stages.append(value)
    return stages


async def test_visibility_is_upserted_only_where_a_session_can_rest(stack: Stack) -> None:
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    await record_history(handle, "accept_sparse_status_upserts")

    assert result.stage is Stage.accepted
    history = await handle.fetch_history()
    # sealing, deciding, committing and unlocking are steps, not places to rest...
    assert published_stages(history) == ["awaiting_capture", "checking", "accepted"]
    # ...but the status query's timeline still names every one of them.
    timeline = [t.stage.value for t in (await stack.status(handle)).timeline]
    assert {"sealing", "deciding", "committing", "unlocking"} <= set(timeline)


async def test_a_session_started_with_its_status_does_not_upsert_it_again(stack: Stack) -> None:
    """The gateway starts a session with its tenant and `awaiting_capture` already set
    (`start_search_attributes`): the first upsert would change nothing, so there is none."""
    tenant = "tenant-started-with-status"
    request, handle = await stack.start(
        tenant_id=tenant, search_attributes=start_search_attributes(tenant)
    )
    await stack.submit(handle, request.session_id, "bona_fide")
    assert (await handle.result()).stage is Stage.accepted

    assert published_stages(await handle.fetch_history()) == ["checking", "accepted"]
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(TENANT_ID) == tenant
    assert attributes.get(ONBOARDING_STATUS) == "accepted"


async def test_short_steps_run_as_local_activities_and_the_unlock_follows_the_commit(
    stack: Stack,
) -> None:
    """LOCAL_STEPS: only seal and the checks go through the server's task queues; the plan,
    the decision, the ledger writes and the unlock are local activities, recorded in
    history as markers, and still in saga order (the unlock last, after the commit)."""
    request, handle = await stack.start()
    await stack.submit(handle, request.session_id, "bona_fide")
    result = await handle.result()
    await record_history(handle, "accept_baseline")

    assert result.stage is Stage.accepted and result.attestation
    history = await handle.fetch_history()
    remote = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert sorted(remote) == sorted(["seal_evidence", *(f"check_{k.value}" for k in CheckKind)])
    ran = scheduled_activities(history)
    local = [name for name in ran if name not in remote]
    assert local[-4:] == ["append_ledger", "decide", "commit_decision", "unlock_signing"]
    assert ran.index("plan_checks") < ran.index("check_liveness")
    ledger = [e.entry_type for e in stack.deps.ledger.entries(request.session_id)]
    assert ledger.index("checks_completed") < ledger.index("decision")
    assert ledger.index("decision") < ledger.index("signing_unlocked")
    # Each step happened once: a retried local activity returns the ledger's receipt.
    assert len(ledger) == len(set(ledger))


async def test_a_new_session_takes_every_change_with_one_patch_marker(stack: Stack) -> None:
    """BASELINE_2026_12: a session started today records one patch marker, before any
    activity, and still has every change it stands for (local steps, app status events,
    the motion challenge, sparse status upserts, the reviewer's step-up)."""
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # app events are started, never delivered
    request, handle = await stack.start(callback_url=dead)
    await stack.submit(handle, request.session_id, "borderline")
    await wait_for_stage(stack, handle, Stage.awaiting_review)

    history = await handle.fetch_history()
    steps = history_steps(history)
    assert [s for s in steps if s.startswith("patch:")] == ["patch:baseline-2026-12"]
    assert steps[0] == "patch:baseline-2026-12", steps
    assert "local:plan_checks" in steps and "local:decide" in steps
    assert len((await stack.status(handle)).motion_challenge) == 2
    assert published_stages(history) == ["awaiting_capture", "checking", "awaiting_review"]
    outcome = await handle.execute_update("review", step_up(), result_type=ReviewOutcome)
    assert outcome.step_up_requested
    await wait_for_stage(stack, handle, Stage.awaiting_step_up)
    await record_history(handle, "reviewer_step_up_pending_baseline")
    history = await handle.fetch_history()
    assert any(
        e.HasField("start_child_workflow_execution_initiated_event_attributes")
        for e in history.events
    ), "the step-up goes to the app"
    assert [s for s in history_steps(history) if s.startswith("patch:")] == [
        "patch:baseline-2026-12"
    ]


async def test_a_session_from_before_the_baseline_asks_every_patch_before_a_local_activity(
    stack: Stack,
) -> None:
    """Regression, from the chaos run, for sessions that ask each change with its own
    patch (those started before BASELINE_2026_12, driven live through a copy of the
    workflow): `reviewer-step-up` was first asked after the checks' ledger append and
    decision ran as local activities. When a task ended between them, replay asked it in
    the earlier task, answered False, and failed on the marker (nondeterminism, the
    session stuck). Every patch such a session can reach later is asked before any local
    activity runs, so no marker can follow one."""
    dead = f"http://127.0.0.1:{free_port()}/hooks"
    async with older_sessions(stack, PreBaselineOnboardingWorkflow) as start:
        request, handle = await start(callback_url=dead)
        await stack.submit(handle, request.session_id, "borderline")
        await wait_for_stage(stack, handle, Stage.awaiting_review)
        order = [
            step
            for step in history_steps(await handle.fetch_history())
            if not step.startswith("activity:")
        ]
        await handle.terminate("test finished")
    patches = [m for m in order if m.startswith("patch:")]
    assert {"patch:reviewer-step-up", "patch:app-status-events", "patch:local-steps"} <= set(
        patches
    )
    first_local = next(i for i, m in enumerate(order) if m.startswith("local:"))
    assert all(order.index(p) < first_local for p in patches), order
