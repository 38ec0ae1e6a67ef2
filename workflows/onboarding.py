"""The onboarding saga: one durable workflow per session.

Reads like the saga diagram in ARCHITECTURE.md: every step is a named await, and every
wait sits beside its timeout and its safe branch. Deterministic code only: no I/O, no
clock but `workflow.now()`, no randomness but `workflow.uuid4()`. Activities are called
by name so this module knows nothing of their implementation.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from signgate.models import (
        TERMINAL_STAGES,
        Action,
        AppEvent,
        AppEventDelivery,
        AppEventType,
        CheckKind,
        CheckOutcome,
        CheckPlan,
        CheckPlanRequest,
        CheckRequest,
        CheckResult,
        CheckStatus,
        CommitRequest,
        DecideRequest,
        Decision,
        EvidenceSubmission,
        LedgerAppend,
        LedgerReceipt,
        Mode,
        OnboardingRequest,
        OnboardingResult,
        OnboardingStatus,
        PolicyRef,
        ReviewerRole,
        ReviewInput,
        ReviewOutcome,
        ReviewRecord,
        RiskTier,
        SealedEvidence,
        SealRequest,
        Stage,
        TimelineEvent,
        Unlocked,
        UnlockRequest,
        VendorResult,
    )
    from workflows import search_attributes as sa
    from workflows.app_events import WORKFLOW_TYPE as APP_EVENT_WORKFLOW
    from workflows.app_events import delivery_workflow_id

MAX_STEP_UPS = 1
# Patch id: shadow sessions skip review and unlock whatever the would-be decision. Before
# it, shadow sessions were never unlocked (and waited for review like enforce ones).
SHADOW_UNGATED = "shadow-mode-unlocks-ungated"
# Patch id: status events (decision, step_up_required, unlocked, expired) go to the app's
# callback URL through AppEventWorkflow children. Before it, only the unlock activity
# called back, once, best effort.
APP_STATUS_EVENTS = "app-status-events"
# Patch id: each capture challenge also draws a random motion challenge (active liveness).
MOTION_CHALLENGE = "motion-challenge"
MOTION_MOVES = ("turn_left", "turn_right", "look_up")
# Patch id: the policy's cheap checks run first; a reject on them alone skips the rest.
CHEAP_FIRST = "cheap-first"
# Patch id: a reviewer may answer "request step-up" (a fresh capture) instead of a verdict.
# It spends the session's one step-up (MAX_STEP_UPS, shared with the policy's); before the
# patch, and once it is spent, the validator refuses it (`step_up_unavailable`,
# `step_up_limit_reached`).
REVIEWER_STEP_UP = "reviewer-step-up"
SKIPPED = "skipped_after_conclusive_cheap_checks"
# Patch id: the OnboardingStatus search attribute is upserted only for the stages a
# session can rest in (and `checking`, which covers vendor waits); the one-activity steps
# between them are in the status query and the timeline, not in visibility. Each upsert
# is a visibility write on the server: 3 per auto-accepted session instead of 7.
SPARSE_STATUS_UPSERTS = "sparse-status-upserts"
UNPUBLISHED_STAGES = frozenset({Stage.sealing, Stage.deciding, Stage.committing, Stage.unlocking})
# Patch id: the short idempotent steps (the check plan, the policy's decisions, the
# saga's ledger appends, the commit and the unlock) run as local activities: inside the
# workflow task that needs them, with no round trip through the server's task queues,
# their results still in history (as markers). Their inputs are not in history, so only
# steps whose input a retried task rebuilds the same qualify. Seal and checks stay
# activities (minutes, heartbeats, vendor waits), and so do reviewers' ledger entries
# (stamped with the time). Before the patch, every step was an activity.
LOCAL_STEPS = "local-steps"
# Patch id: a session that takes this one, first thing in its first task, has every
# change above from its start, without asking for each: one marker (and one
# `TemporalChangeVersion` upsert) instead of five to seven. Sessions started before it
# answer False on replay and ask for each change as they always did. A change made after
# this one gets its own patch (and, in time, a new baseline that includes it).
BASELINE_2026_12 = "baseline-2026-12"
# A vendor may deliver a webhook before the activity that asked for it has returned;
# such early results wait here. Bounded so a flood of signals cannot bloat history.
MAX_EARLY_RESULTS = 32

# Faults are retried a few times, then the saga fails safe (the check becomes
# unavailable -> review). Bad input (non-retryable reason codes) is never retried.
FAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
)
# The ledger commit and the unlock must eventually happen: retry them much longer.
DURABLE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=50,
)
CHECK_TIMEOUT = timedelta(seconds=30)
SEAL_TIMEOUT = timedelta(minutes=5)
LEDGER_TIMEOUT = timedelta(seconds=30)
# Sealing and checks heartbeat every 2 s (activities/heartbeat.py): a dead worker's
# activity is retried after this, not after its start-to-close timeout. Scheduling
# options are not part of replay's determinism checks, so no patch is needed.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)

T = TypeVar("T")


class SagaAbort(Exception):
    """A step ended the saga early with a final decision (e.g. evidence failed sealing)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reasons)
        self.decision = decision


@workflow.defn(name="OnboardingWorkflow")
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, request: OnboardingRequest) -> None:
        self._req = request
        self._baseline = False  # set first thing in `run`
        self._stage = Stage.awaiting_capture
        self._challenge = ""
        self._motion: list[str] = []
        self._round = 0
        self._submission: EvidenceSubmission | None = None
        self._sealed: list[SealedEvidence] = []
        self._checks: list[CheckResult] = []
        self._pending: dict[str, CheckKind] = {}
        self._vendor_results: dict[str, CheckResult] = {}
        self._decision: Decision | None = None
        self._reviews: list[ReviewRecord] = []
        self._reviewers_in_flight: set[str] = set()
        self._approvals_needed = 1
        self._step_ups = 0
        # Review rounds: a reviewer's step-up ends one; the next (if the new evidence goes
        # to review again) counts only the verdicts given from `_review_from` on.
        self._review_round = 0
        self._review_from = 0
        self._step_up_allowed = False
        self._step_up_in_flight = False
        self._timeline: list[TimelineEvent] = []
        self._receipt: LedgerReceipt | None = None
        self._attestation: str | None = None

    # ------------------------------------------------------------------ the saga

    @workflow.run
    async def run(self, request: OnboardingRequest) -> OnboardingResult:
        self._baseline = workflow.patched(BASELINE_2026_12)
        self._set_stage(Stage.awaiting_capture, "session created")
        self._issue_challenge()
        submission = await self._wait_for_capture(self._req.timeouts.capture_s)
        if submission is None:
            # Safe branch: no capture, nothing to decide on; the session simply expires.
            return await self._expire()

        decision = await self._decide_rounds(submission)
        shadow = self._req.mode is Mode.shadow and self._patched(SHADOW_UNGATED)
        # A shadow session does not gate signing, so nobody waits for a reviewer: the
        # would-be decision (even "review") is what gets committed and measured.
        while decision.action is Action.review and not shadow:
            decision = await self._await_review(decision)
            if decision.action is Action.step_up:
                decision = await self._reviewer_step_up(decision)

        self._decision = decision
        self._set_stage(Stage.committing, f"committing {decision.action}")
        self._receipt = await self._commit(decision)
        await self._tell_app(
            AppEventType.decision, _decision_event(decision, self._receipt, self._req.mode)
        )

        if shadow or (decision.action is Action.accept and self._req.mode is Mode.enforce):
            note = "shadow: signing not gated" if shadow else "decision committed"
            self._set_stage(Stage.unlocking, f"{note}; unlocking signing")
            unlocked = await self._unlock(decision, self._receipt)
            self._attestation = unlocked.attestation
            await self._tell_app(
                AppEventType.unlocked,
                {"attestation": unlocked.attestation, "ledger_seq": unlocked.ledger.seq},
            )
        final = Stage.accepted if decision.action is Action.accept else Stage.rejected
        self._set_stage(final, ", ".join(decision.reasons))
        # Let an in-flight review update finish replying before the run completes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _decide_rounds(self, submission: EvidenceSubmission) -> Decision:
        """Seal -> checks -> decide, with at most MAX_STEP_UPS fresh captures."""
        while True:
            try:
                sealed = await self._seal(submission)
            except SagaAbort as abort:
                return abort.decision
            self._checks = await self._run_checks(sealed, submission)
            await self._record_checks()
            decision = await self._policy_decision(sealed, self._step_ups)
            self._decision = decision
            if decision.action is not Action.step_up:
                return decision
            if self._step_ups >= MAX_STEP_UPS:
                # The policy should not ask twice; if it does, a person decides.
                return _with(decision, Action.review, "step_up_limit_reached")
            next_capture = await self._step_up(decision)
            if next_capture is None:
                # Safe branch: the person did not recapture in time -> a reviewer decides.
                return _with(decision, Action.review, "step_up_timeout")
            submission = next_capture

    async def _reviewer_step_up(self, decision: Decision) -> Decision:
        """A reviewer asked for a fresh capture: decide again on it, as after the policy's
        step-up (the new round may be accepted, rejected or reviewed again)."""
        self._decision = decision
        next_capture = await self._step_up(decision)
        if next_capture is None:
            # Safe branch: a reviewer found the evidence insufficient and the person sent
            # nothing better in time: nobody signs on the old evidence.
            return _with(decision, Action.reject, "step_up_timeout", "timeout")
        return await self._decide_rounds(next_capture)

    async def _step_up(self, decision: Decision) -> EvidenceSubmission | None:
        """Spend the session's step-up: a fresh challenge, the app told, the capture awaited
        (None when the step-up timeout passes first)."""
        self._step_ups += 1
        self._set_stage(Stage.awaiting_step_up, ", ".join(decision.reasons))
        self._issue_challenge()
        await self._tell_app(
            AppEventType.step_up_required,
            {"reasons": decision.reasons, "challenge_nonce": self._challenge},
            f":{self._round}",
        )
        return await self._wait_for_capture(self._req.timeouts.step_up_s)

    # ------------------------------------------------------------------ steps

    async def _wait_for_capture(self, timeout_s: int) -> EvidenceSubmission | None:
        self._submission = None
        try:
            await workflow.wait_condition(
                lambda: self._submission is not None,
                timeout=timedelta(seconds=timeout_s),
                timeout_summary="capture timeout",
            )
        except builtins.TimeoutError:
            return None
        self._round += 1
        return self._submission

    async def _seal(self, submission: EvidenceSubmission) -> SealedEvidence:
        self._set_stage(Stage.sealing, f"round {self._round}")
        request = SealRequest(
            session_id=self._req.session_id,
            tenant_id=self._req.tenant_id,
            round=self._round,
            submission=submission,
            expected_nonce=self._challenge,
        )
        try:
            sealed = await workflow.execute_activity(
                "seal_evidence",
                request,
                result_type=SealedEvidence,
                start_to_close_timeout=SEAL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=FAULT_RETRY,
            )
        except ActivityError as err:
            reason = _reason_of(err)
            # Evidence that does not match its hash is never decided on by a machine:
            # bad bytes are rejected; a sealing fault goes to a person.
            action = Action.reject if _is_bad_input(err) else Action.review
            raise SagaAbort(self._fallback_decision(action, reason)) from err
        self._sealed.append(sealed)
        return sealed

    async def _run_checks(
        self, sealed: SealedEvidence, submission: EvidenceSubmission
    ) -> list[CheckResult]:
        self._set_stage(Stage.checking, f"round {self._round}: {len(CheckKind)} checks")
        requests = [
            CheckRequest(
                session_id=self._req.session_id,
                tenant_id=self._req.tenant_id,
                round=self._round,
                kind=kind,
                artifacts=sealed.artifacts,
                capture=submission.capture,
                merkle_root=sealed.merkle_root,
                motion_challenge=self._motion,
            )
            for kind in CheckKind
        ]
        if self._patched(CHEAP_FIRST):
            return await self._run_cheap_first(sealed, requests)
        return list(await asyncio.gather(*(self._run_check(r) for r in requests)))

    async def _run_cheap_first(
        self, sealed: SealedEvidence, requests: list[CheckRequest]
    ) -> list[CheckResult]:
        """The policy's cheap checks first; if the policy already rejects on them and the
        sealing flags, the heavy ones are recorded as skipped (unavailable), never run."""
        plan = await self._step(
            "plan_checks", CheckPlanRequest(policy_id=self._req.policy_id), CheckPlan
        )
        cheap = [r for r in requests if r.kind in plan.cheap_first]
        heavy = [r for r in requests if r.kind not in plan.cheap_first]
        if not cheap or not heavy:
            return list(await asyncio.gather(*(self._run_check(r) for r in requests)))
        tasks = [asyncio.create_task(self._run_check(r)) for r in cheap]
        cheap_kinds = {r.kind for r in cheap}
        # Wait for the cheap checks only while they answer at once: one parked on a vendor
        # webhook must not hold the heavy ones back (nor double a silent vendor's timeout).
        await workflow.wait_condition(
            lambda: all(t.done() for t in tasks) or bool(cheap_kinds & set(self._pending.values()))
        )
        if all(t.done() for t in tasks) and await self._rejects_early(sealed, tasks):
            rest = [_failed_check(r.kind, CheckStatus.unavailable, SKIPPED) for r in heavy]
        else:
            rest = list(await asyncio.gather(*(self._run_check(r) for r in heavy)))
        first = list(await asyncio.gather(*tasks))
        by_kind = {c.kind: c for c in [*first, *rest]}
        return [by_kind[r.kind] for r in requests]

    async def _rejects_early(
        self, sealed: SealedEvidence, tasks: list[asyncio.Task[CheckResult]]
    ) -> bool:
        """Whether the policy already rejects on the cheap results and the sealing flags
        (it never accepts on them: every required check is needed for that)."""
        early = await self._step(
            "decide",
            DecideRequest(
                session_id=self._req.session_id,
                policy_id=self._req.policy_id,
                checks=[t.result() for t in tasks],
                evidence_flags=sealed.flags,
            ),
            Decision,
        )
        if early.action is Action.reject:
            self._note(f"cheap checks conclusive ({', '.join(early.reasons)}): heavy ones skipped")
        return early.action is Action.reject

    async def _run_check(self, request: CheckRequest) -> CheckResult:
        try:
            outcome = await workflow.execute_activity(
                f"check_{request.kind.value}",
                request,
                result_type=CheckOutcome,
                start_to_close_timeout=CHECK_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=FAULT_RETRY,
            )
        except ActivityError as err:
            status = CheckStatus.error if _is_bad_input(err) else CheckStatus.unavailable
            return _failed_check(request.kind, status, _reason_of(err))
        if outcome.state == "completed" and outcome.result is not None:
            return outcome.result
        if outcome.vendor_ref is None:
            return _failed_check(request.kind, CheckStatus.error, "vendor_outcome_invalid")
        return await self._await_vendor(request.kind, outcome.vendor_ref)

    async def _await_vendor(self, kind: CheckKind, vendor_ref: str) -> CheckResult:
        self._pending[vendor_ref] = kind
        try:
            await workflow.wait_condition(
                lambda: vendor_ref in self._vendor_results,
                timeout=timedelta(seconds=self._req.timeouts.vendor_webhook_s),
                timeout_summary=f"vendor webhook for {kind.value}",
            )
        except builtins.TimeoutError:
            # Safe branch: a silent vendor makes the check unavailable, never passed.
            return _failed_check(kind, CheckStatus.unavailable, "vendor_timeout")
        finally:
            self._pending.pop(vendor_ref, None)
        return self._vendor_results[vendor_ref]

    async def _record_checks(self) -> None:
        body = {
            "round": self._round,
            "checks": [c.model_dump(mode="json") for c in self._checks],
        }
        await self._append("checks_completed", f"checks_completed:{self._round}", body)

    async def _policy_decision(self, sealed: SealedEvidence, step_ups: int) -> Decision:
        self._set_stage(Stage.deciding, f"round {self._round}")
        return await self._step(
            "decide",
            DecideRequest(
                session_id=self._req.session_id,
                policy_id=self._req.policy_id,
                checks=self._checks,
                evidence_flags=sealed.flags,
                step_ups_done=step_ups,
            ),
            Decision,
        )

    async def _await_review(self, policy_decision: Decision) -> Decision:
        """A person decides. SLA timeout escalates; the final timeout rejects."""
        # Overriding a red-tier signal takes four eyes, one of them senior.
        self._approvals_needed = 2 if policy_decision.tier is RiskTier.red else 1
        # A new round of review: verdicts on earlier evidence no longer count.
        self._review_round += 1
        self._review_from = len(self._reviews)
        self._reviewers_in_flight = set()
        self._step_up_allowed = self._patched(REVIEWER_STEP_UP) and self._step_ups < MAX_STEP_UPS
        self._set_stage(Stage.awaiting_review, ", ".join(policy_decision.reasons))
        timeouts = self._req.timeouts
        try:
            await workflow.wait_condition(
                self._review_over,
                timeout=timedelta(seconds=timeouts.review_sla_s),
                timeout_summary="review SLA",
            )
        except builtins.TimeoutError:
            self._set_stage(Stage.escalated, "review SLA missed")
            remaining = max(1, timeouts.review_final_s - timeouts.review_sla_s)
            try:
                await workflow.wait_condition(
                    self._review_over,
                    timeout=timedelta(seconds=remaining),
                    timeout_summary="final review timeout",
                )
            except builtins.TimeoutError:
                # Safe branch: nobody decided, so nobody signs. Never auto-accept.
                return _with(policy_decision, Action.reject, "review_timeout", "timeout")
        return self._review_decision(policy_decision)

    def _verdicts(self) -> list[ReviewRecord]:
        """This review round's approvals and rejections (not step-up requests)."""
        return [r for r in self._reviews[self._review_from :] if not r.step_up]

    def _step_up_requested(self) -> bool:
        return any(r.step_up for r in self._reviews[self._review_from :])

    def _verdicts_in_flight(self) -> bool:
        return len(self._reviewers_in_flight) > len(self._verdicts())

    def _review_over(self) -> bool:
        """A verdict is complete, or a reviewer's step-up request is on the ledger."""
        if self._step_up_in_flight:
            return False
        return self._step_up_requested() or self._review_settled()

    def _review_settled(self) -> bool:
        if any(not r.approve for r in self._verdicts()):
            return True
        return self._approvals_complete()

    def _approvals_complete(self) -> bool:
        approvers = [r for r in self._verdicts() if r.approve]
        if len({r.reviewer_id for r in approvers}) < self._approvals_needed:
            return False
        if self._approvals_needed > 1:
            return any(r.role is ReviewerRole.senior_reviewer for r in approvers)
        return True

    def _review_decision(self, policy_decision: Decision) -> Decision:
        by = ",".join(f"reviewer:{r.reviewer_id}" for r in self._verdicts())
        rejecting = [r for r in self._verdicts() if not r.approve]
        if rejecting:
            return _with(policy_decision, Action.reject, "reviewer_rejected", by)
        asking = [r for r in self._reviews[self._review_from :] if r.step_up]
        if asking:
            who = f"reviewer:{asking[0].reviewer_id}"
            return _with(policy_decision, Action.step_up, "reviewer_step_up", who)
        if not self._sealed:
            # Nothing sealed means nothing an attestation could point at.
            return _with(policy_decision, Action.reject, "evidence_not_sealed", by)
        return _with(policy_decision, Action.accept, "reviewer_approved", by)

    async def _commit(self, decision: Decision) -> LedgerReceipt:
        return await self._step(
            "commit_decision",
            CommitRequest(
                session_id=self._req.session_id,
                tenant_id=self._req.tenant_id,
                mode=self._req.mode,
                decision=decision,
                checks=self._checks,
                merkle_roots=[s.merkle_root for s in self._sealed],
                reviews=self._reviews,
            ),
            LedgerReceipt,
        )

    async def _unlock(self, decision: Decision, receipt: LedgerReceipt) -> Unlocked:
        return await self._step(
            "unlock_signing",
            UnlockRequest(
                session_id=self._req.session_id,
                mode=self._req.mode,
                tenant_id=self._req.tenant_id,
                subject_ref=self._req.subject_ref,
                intent=self._req.intent,
                decision=decision,
                decision_receipt=receipt,
                merkle_root=self._sealed[-1].merkle_root,
                callback_url=self._req.callback_url,
            ),
            Unlocked,
        )

    async def _expire(self) -> OnboardingResult:
        await self._append("expired", "expired", {"reason": "capture_timeout"})
        self._set_stage(Stage.expired, "capture_timeout")
        await self._tell_app(AppEventType.expired, {"reason": "capture_timeout"})
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _append(self, entry_type: str, key_suffix: str, body: dict[str, object]) -> None:
        await self._step(
            "append_ledger",
            LedgerAppend(
                session_id=self._req.session_id,
                entry_type=entry_type,
                idempotency_key=f"{self._req.session_id}:{key_suffix}",
                body=body,
            ),
            LedgerReceipt,
        )

    def _patched(self, patch_id: str) -> bool:
        """Whether a change is in for this session: always, for a session that took
        BASELINE_2026_12 (no marker of its own); else `workflow.patched` decides, as it
        did before the baseline."""
        return self._baseline or workflow.patched(patch_id)

    def _local_steps(self) -> bool:
        """Whether LOCAL_STEPS is patched in; if so, the patches a session can first reach
        after a local activity are asked for here too, before any local activity ran.

        Why: a local activity can end a workflow task before the code after it runs (the
        chaos run caught one after a worker's sticky queue timed out). On replay that code
        runs in the earlier task, where `workflow.patched` cannot see a marker recorded in
        the later one: it answers False and the replay fails on the marker
        (`chaos/findings/patch-after-local-activity.md`). Asked here, their markers sit in
        the task that first took LOCAL_STEPS, the same live and on replay; later calls
        return the remembered answer and add nothing."""
        if not self._patched(LOCAL_STEPS):
            return False
        self._patched(REVIEWER_STEP_UP)
        if self._req.callback_url is not None:
            self._patched(APP_STATUS_EVENTS)
        if self._req.mode is Mode.shadow:
            self._patched(SHADOW_UNGATED)
        return True

    async def _step(self, activity: str, arg: Any, result_type: type[T]) -> T:
        """Run one short idempotent step: a local activity once LOCAL_STEPS is patched in
        (an activity before). Retried as long either way: these steps must happen."""
        if self._local_steps():
            return await workflow.execute_local_activity(
                activity,
                arg,
                result_type=result_type,
                start_to_close_timeout=LEDGER_TIMEOUT,
                retry_policy=DURABLE_RETRY,
            )
        return await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=DURABLE_RETRY,
        )

    async def _tell_app(
        self, kind: AppEventType, data: dict[str, object], id_suffix: str = ""
    ) -> None:
        """Start delivering a status event and move on: the saga never waits for the app,
        only for Temporal to accept the delivery workflow (ABANDON: it outlives us)."""
        if self._req.callback_url is None or not self._patched(APP_STATUS_EVENTS):
            return
        event = AppEvent(
            event_id=f"{self._req.session_id}:{kind.value}{id_suffix}",
            type=kind,
            session_id=self._req.session_id,
            tenant_id=self._req.tenant_id,
            occurred_at=workflow.now(),
            data=data,
        )
        try:
            await workflow.start_child_workflow(
                APP_EVENT_WORKFLOW,
                AppEventDelivery(callback_url=self._req.callback_url, event=event),
                id=delivery_workflow_id(event.event_id),
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            self._note(f"{kind.value} event was already being delivered")

    # ------------------------------------------------------------------ handlers

    @workflow.signal(name="evidence_submitted")
    def evidence_submitted(self, submission: EvidenceSubmission) -> None:
        # Only a capture the saga is waiting for counts; late or duplicate ones are ignored.
        if self._stage in (Stage.awaiting_capture, Stage.awaiting_step_up):
            if self._submission is None:
                self._submission = submission

    @workflow.signal(name="vendor_result")
    def vendor_result(self, result: VendorResult) -> None:
        kind = self._pending.get(result.vendor_ref)
        if kind is not None and result.result.kind is kind:
            self._vendor_results.setdefault(result.vendor_ref, result.result)
        elif kind is None and len(self._vendor_results) < MAX_EARLY_RESULTS:
            # Arrived before the activity reported Pending: keep it (first one wins).
            self._vendor_results.setdefault(result.vendor_ref, result.result)

    @workflow.update(name="review")
    async def review(self, review: ReviewInput) -> ReviewOutcome:
        # Updates validated in the same activation: the handler that starts second loses.
        if review.step_up:
            return await self._record_step_up(review)
        if self._step_up_in_flight:
            raise ApplicationError("a step-up was requested", type="review_step_up_requested")
        if review.reviewer_id in self._reviewers_in_flight:
            raise ApplicationError("reviewer already reviewed", type="review_duplicate")
        self._reviewers_in_flight.add(review.reviewer_id)
        record = ReviewRecord(
            reviewer_id=review.reviewer_id,
            role=review.role,
            approve=review.approve,
            reason=review.reason,
            at=workflow.now(),
        )
        # The reviewer's action is on the ledger before it can move the saga.
        receipt = await self._append_review(record)
        self._reviews.append(record.model_copy(update={"ledger": receipt}))
        verb = "approved" if review.approve else "rejected"
        self._note(f"{review.reviewer_id} ({review.role.value}) {verb}: {review.reason}")
        settled = self._review_settled()
        approved = sum(r.approve for r in self._verdicts())
        needed = 0 if settled else self._approvals_needed - approved
        return ReviewOutcome(accepted_review=True, decision_final=settled, approvals_needed=needed)

    async def _record_step_up(self, review: ReviewInput) -> ReviewOutcome:
        """A reviewer asks for a fresh capture. It is on the ledger before it moves the
        saga; while it is being written, no verdict can start (and the other way round)."""
        if self._step_up_in_flight or self._step_up_requested() or self._verdicts_in_flight():
            raise ApplicationError("another review is being recorded", type="review_duplicate")
        self._step_up_in_flight = True
        record = ReviewRecord(
            reviewer_id=review.reviewer_id,
            role=review.role,
            approve=False,
            reason=review.reason,
            at=workflow.now(),
            step_up=True,
        )
        try:
            receipt = await self._append_review(record)
            self._reviews.append(record.model_copy(update={"ledger": receipt}))
        finally:
            self._step_up_in_flight = False
        self._note(
            f"{review.reviewer_id} ({review.role.value}) requested a step-up: {review.reason}"
        )
        return ReviewOutcome(
            accepted_review=True, decision_final=False, approvals_needed=0, step_up_requested=True
        )

    async def _append_review(self, record: ReviewRecord) -> LedgerReceipt:
        # One entry per reviewer and round of review (and one for a step-up request), so a
        # retried activity never duplicates it and a later round is never swallowed.
        key = f"{self._req.session_id}:review:{record.reviewer_id}"
        if self._review_round > 1:
            key += f":{self._review_round}"
        if record.step_up:
            key += ":step_up"
        # An activity, not a local one: the record carries `workflow.now()`, and a local
        # activity's input is not in history, so a retried workflow task would send the
        # ledger a different body under the same key (`ledger_idempotency_conflict`).
        return await workflow.execute_activity(
            "append_ledger",
            LedgerAppend(
                session_id=self._req.session_id,
                entry_type="review",
                idempotency_key=key,
                body=record.model_dump(mode="json"),
            ),
            result_type=LedgerReceipt,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=DURABLE_RETRY,
        )

    @review.validator
    def validate_review(self, review: ReviewInput) -> None:
        if self._stage not in (Stage.awaiting_review, Stage.escalated):
            raise ValueError(f"session is not awaiting review (stage: {self._stage.value})")
        if self._review_settled():
            raise ValueError("review already settled")
        if self._step_up_in_flight or self._step_up_requested():
            raise ValueError("a reviewer has asked for a fresh capture")
        known_role = self._req.reviewers.get(review.reviewer_id)
        if known_role is None:
            raise ValueError(f"unknown reviewer {review.reviewer_id!r}")
        if known_role is not review.role:
            raise ValueError(f"reviewer {review.reviewer_id!r} does not hold role {review.role}")
        if review.step_up:
            self._validate_step_up()
            return
        if review.reviewer_id in self._reviewers_in_flight:
            raise ValueError(f"reviewer {review.reviewer_id!r} already reviewed this session")
        approvals = [r for r in self._verdicts() if r.approve]
        last_approval = len(approvals) + 1 == self._approvals_needed > 1
        no_senior_yet = not any(r.role is ReviewerRole.senior_reviewer for r in approvals)
        if review.approve and last_approval and no_senior_yet:
            if review.role is not ReviewerRole.senior_reviewer:
                raise ValueError(
                    "the second approval of a red-tier session needs a senior_reviewer"
                )

    def _validate_step_up(self) -> None:
        """At most MAX_STEP_UPS fresh captures per session, the policy's included: once it
        is spent, a reviewer decides on the evidence there is (approve or reject)."""
        if self._step_ups >= MAX_STEP_UPS:
            raise ApplicationError(
                "this session already had its one step-up: approve or reject",
                type="step_up_limit_reached",
            )
        if not self._step_up_allowed:
            raise ApplicationError(
                "this session started before reviewers could request a step-up",
                type="step_up_unavailable",
            )
        if self._verdicts_in_flight():
            raise ValueError("another review is being recorded: reload and try again")

    @workflow.query(name="status")
    def status(self) -> OnboardingStatus:
        return OnboardingStatus(
            session_id=self._req.session_id,
            stage=self._stage,
            challenge_nonce=self._challenge,
            round=self._round,
            pending=[f"{kind.value}:{ref}" for ref, kind in self._pending.items()]
            + self._pending_people(),
            checks=self._checks,
            decision=self._decision,
            reviews=self._reviews,
            timeline=self._timeline,
            attestation=self._attestation,
            decision_receipt=self._receipt,
            motion_challenge=self._motion,
        )

    # ------------------------------------------------------------------ helpers

    def _pending_people(self) -> list[str]:
        if self._stage in (Stage.awaiting_capture, Stage.awaiting_step_up):
            return ["capture"]
        if self._stage in (Stage.awaiting_review, Stage.escalated):
            return ["review"]
        return []

    def _issue_challenge(self) -> None:
        self._challenge = str(workflow.uuid4())
        if self._patched(MOTION_CHALLENGE):
            # Two different moves in a random order, fresh for every capture round.
            self._motion = workflow.random().sample(MOTION_MOVES, 2)

    def _set_stage(self, stage: Stage, note: str = "") -> None:
        self._stage = stage
        self._note(note)
        if stage in UNPUBLISHED_STAGES and self._patched(SPARSE_STATUS_UPSERTS):
            return
        updates = [
            sa.ONBOARDING_STATUS.value_set(stage.value),
            sa.TENANT_ID.value_set(self._req.tenant_id),
        ]
        if self._decision is not None:
            updates.append(sa.RISK_TIER.value_set(self._decision.tier.value))
            updates.append(sa.POLICY_VERSION.value_set(self._decision.policy.version))
        current = workflow.info().typed_search_attributes
        if self._baseline and all(current.get(u.key) == u.value for u in updates):
            return  # already so (set at the start by the gateway): an upsert would change nothing
        workflow.upsert_search_attributes(updates)

    def _note(self, note: str) -> None:
        self._timeline.append(TimelineEvent(at=workflow.now(), stage=self._stage, note=note))

    def _fallback_decision(self, action: Action, reason: str) -> Decision:
        """A decision the saga takes without the policy (sealing failed): never accept."""
        tier = RiskTier.red if action is Action.reject else RiskTier.yellow
        return Decision(
            action=action,
            tier=tier,
            reasons=[reason],
            policy=PolicyRef(policy_id="saga", version="fail-safe", sha256="0" * 64),
            decided_by="saga",
        )

    def _result(self) -> OnboardingResult:
        assert self._stage in TERMINAL_STAGES
        return OnboardingResult(
            session_id=self._req.session_id,
            stage=self._stage,
            decision=self._decision,
            decision_receipt=self._receipt,
            attestation=self._attestation,
            merkle_roots=[s.merkle_root for s in self._sealed],
        )


def _with(decision: Decision, action: Action, reason: str, by: str | None = None) -> Decision:
    tier = decision.tier
    if action is Action.reject:
        tier = RiskTier.red
    return decision.model_copy(
        update={
            "action": action,
            "tier": tier,
            "reasons": [*decision.reasons, reason],
            "decided_by": by or decision.decided_by,
        }
    )


def _decision_event(decision: Decision, receipt: LedgerReceipt, mode: Mode) -> dict[str, object]:
    return {
        "mode": mode.value,
        "action": decision.action.value,
        "tier": decision.tier.value,
        "reasons": decision.reasons,
        "ledger_seq": receipt.seq,
        "ledger_entry_hash": receipt.entry_hash,
    }


def _failed_check(kind: CheckKind, status: CheckStatus, reason: str) -> CheckResult:
    return CheckResult(kind=kind, status=status, provider="saga", reason=reason)


def _reason_of(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    if isinstance(cause, TimeoutError):
        return "activity_timeout"
    return "activity_failed"


def _is_bad_input(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.non_retryable
