"""What must hold after a chaos run, checked against the gateway's status, the audit
ledger and the evidence store, each a list of violations (empty = it held)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client

from chaos.drive import AMBIGUOUS, FORGED_RISK, REVIEW_STAGES, SessionRecord
from signgate.evidence_stores import open_evidence_store
from signgate.ledger import LedgerEntry, open_ledger
from signgate.models import ArtifactRef, CheckStatus, Stage
from signgate.payload_codec import codec_for
from signgate.settings import Settings
from workers.history import fetch_history, replay_histories


@dataclass
class Verdict:
    name: str
    checked: int
    violations: list[str]


def check_all(
    records: list[SessionRecord], settings: Settings, env: dict[str, str]
) -> list[Verdict]:
    ledger = open_ledger(settings, None)
    entries = {r.session_id: ledger.entries(r.session_id) for r in records if r.session_id}
    checks: list[Callable[[], Verdict]] = [
        lambda: accepted_only_when_earned(records, entries),
        lambda: none_stuck_or_lost(records),
        lambda: ledger_verifies(settings, env),
        lambda: evidence_intact(settings, entries),
        lambda: hostile_webhooks_refused(records),
        lambda: duplicates_changed_nothing(records),
        lambda: unlock_only_after_decision(entries),
        lambda: review_races_settled_once(records, entries),
    ]
    return [check() for check in checks]


async def histories_replay(
    client: Client, settings: Settings, records: list[SessionRecord]
) -> Verdict:
    """Each session's history, written across SIGKILLed workers and a server crash,
    replays against today's workflow code: a history that does not is a session whose
    queries fail for good and which cannot move on (chaos/findings/timer-replay-*)."""
    sessions = [r.session_id for r in records if r.session_id]
    histories = [await fetch_history(client, sid) for sid in sessions]
    outcomes = await replay_histories(histories, codec_for(settings))
    bad = [f"{o.session_id}: {o.failure}" for o in outcomes if not o.ok]
    return Verdict("every session's history replays (signgate ops replay)", len(outcomes), bad)


def accepted_only_when_earned(
    records: list[SessionRecord], entries: dict[str, list[LedgerEntry]]
) -> Verdict:
    """Accepted => every check completed and the policy accepted, or a reviewer approved
    (and that approval is on the ledger). A plan that cannot earn an accept never has one."""
    bad: list[str] = []
    accepted = [r for r in records if r.final is not None and r.final.stage is Stage.accepted]
    for r in accepted:
        assert r.final is not None
        decision = r.final.decision
        sid = r.session_id
        if decision is None or decision.action != "accept":
            bad.append(f"{sid}: accepted without an accept decision")
            continue
        if not r.plan.may_accept:
            bad.append(f"{sid} ({r.plan.name}): accepted, but nothing in its plan earns that")
        if decision.decided_by == "policy":
            incomplete = [
                c.kind.value for c in r.final.checks if c.status is not CheckStatus.completed
            ]
            if incomplete or len(r.final.checks) != 5:
                bad.append(f"{sid}: policy accepted with checks {incomplete or 'missing'}")
        elif decision.decided_by.startswith("reviewer:"):
            approvals = [
                e for e in entries.get(sid, []) if e.entry_type == "review" and e.body["approve"]
            ]
            if not approvals:
                bad.append(f"{sid}: accepted by {decision.decided_by}, no approval on the ledger")
        else:
            bad.append(f"{sid}: accepted by {decision.decided_by!r}")
    return Verdict("0 accepted unless checks all completed + policy accept, or reviewer approved",
                   len(accepted), bad)  # fmt: skip


def none_stuck_or_lost(records: list[SessionRecord]) -> Verdict:
    """Settled = terminal or awaiting review. A session whose only wait is an activity of a
    SIGKILLed worker (retried at its timeout; `recovering`) is counted, not failed."""
    allowed = {Stage.accepted, Stage.rejected, Stage.expired, *REVIEW_STAGES}
    bad = []
    for r in records:
        if r.recovering or (not r.session_id and r.error is None):
            continue  # recovering (see above), or never started: the run's deadline came first
        if r.final is None:
            bad.append(f"{r.session_id or '(never created)'} ({r.plan.name}): lost: {r.error}")
        elif r.final.stage not in allowed:
            where = f"stuck at {r.final.stage.value}, waiting on {r.waiting_on}"
            bad.append(f"{r.session_id} ({r.plan.name}): {where}")
    recovering = sum(r.recovering for r in records)
    name = "every session terminal or awaiting review"
    if recovering:
        name += f" ({recovering} recovering from a killed worker's activity, not failed)"
    return Verdict(name, len(records), bad)


def ledger_verifies(settings: Settings, env: dict[str, str]) -> Verdict:
    """Through the CLI, as an auditor would: `signgate audit verify` exits 0."""
    run = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "verify", "--ledger", str(settings.ledger_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    count = len(open_ledger(settings, None).entries())
    bad = [] if run.returncode == 0 else [f"audit verify: {run.stdout} {run.stderr}".strip()]
    return Verdict("every ledger entry verifies (signgate audit verify)", count, bad)


def evidence_intact(settings: Settings, entries: dict[str, list[LedgerEntry]]) -> Verdict:
    store = open_evidence_store(settings)
    checked, bad = 0, []
    for sid, session_entries in entries.items():
        for entry in session_entries:
            if entry.entry_type != "evidence_sealed":
                continue
            for raw in entry.body["artifacts"]:
                checked += 1
                ref = ArtifactRef.model_validate(raw)
                if not store.verify(ref):
                    bad.append(f"{sid}: {ref.kind} {ref.object_key} no longer hashes to its seal")
    return Verdict("every sealed artifact still hashes to its recorded value", checked, bad)


def hostile_webhooks_refused(records: list[SessionRecord]) -> Verdict:
    """Refused with 401, and never a result: forged and stale webhooks claim risk 0.0,
    which no genuine result in the run carries, so a 0.0 in the session's checks would
    be one that got through."""
    checked, bad = 0, []
    for r in records:
        hostile = [s for s in r.webhooks if s.mode in ("forged", "stale")]
        checked += len(hostile)
        for sent in hostile:
            if sent.status != 401:
                bad.append(f"{r.session_id}: a {sent.mode} webhook got HTTP {sent.status}")
        if hostile and r.final is not None:
            if any(c.risk_score == FORGED_RISK for c in r.final.checks):
                bad.append(f"{r.session_id}: a check carries the forged result")
    return Verdict("every forged/stale webhook refused (401), none became a result",
                   checked, bad)  # fmt: skip


def duplicates_changed_nothing(records: list[SessionRecord]) -> Verdict:
    """A re-delivered event is answered `duplicate` and the session holds exactly one
    result per check, the genuine one."""
    checked, bad = 0, []
    for r in records:
        dups = [s for s in r.webhooks if s.mode == "duplicate"]
        if not dups:
            continue
        checked += len(dups)
        if any(s.status != 200 or s.duplicate is not True for s in dups):
            bad.append(f"{r.session_id}: a duplicate was not answered as one: {dups}")
        if r.final is not None and r.final.checks:
            kinds = [c.kind for c in r.final.checks]
            if len(kinds) != len(set(kinds)):
                bad.append(f"{r.session_id}: duplicated check results {kinds}")
    return Verdict("duplicate webhooks answered as duplicates, changed nothing", checked, bad)


def unlock_only_after_decision(entries: dict[str, list[LedgerEntry]]) -> Verdict:
    checked, bad = 0, []
    for sid, session_entries in entries.items():
        decisions = [e for e in session_entries if e.entry_type == "decision"]
        for unlock in (e for e in session_entries if e.entry_type == "signing_unlocked"):
            checked += 1
            prior = [d for d in decisions if d.seq < unlock.seq]
            if not prior:
                bad.append(f"{sid}: signing_unlocked seq {unlock.seq} before any decision")
            elif unlock.body.get("decision_seq") != prior[-1].seq:
                bad.append(f"{sid}: unlock names decision seq {unlock.body.get('decision_seq')}")
            elif (
                prior[-1].body["decision"]["action"] != "accept"
                and prior[-1].body.get("mode") != "shadow"
            ):
                bad.append(f"{sid}: unlocked after a {prior[-1].body['decision']['action']}")
    return Verdict("no unlock without a prior committed accept (ledger order)", checked, bad)


def review_races_settled_once(
    records: list[SessionRecord], entries: dict[str, list[LedgerEntry]]
) -> Verdict:
    """A reviewer's call the gateway took is the decision committed; a call refused (the
    final timeout won the race) left no review on the ledger and the session rejected."""
    checked, bad = 0, []
    for r in records:
        if r.review_status in (None, AMBIGUOUS) or r.final is None:
            continue
        checked += 1
        sid, decision = r.session_id, r.final.decision
        reviews = [e for e in entries.get(sid, []) if e.entry_type == "review"]
        approve = r.plan.review != "reject"
        if r.review_status == 200 and decision is not None and decision.tier == "red":
            # Four eyes: one approval is half of one; the final timeout may still reject.
            if r.final.stage is Stage.accepted and len(reviews) < 2:
                bad.append(f"{sid}: red tier accepted on {len(reviews)} review(s)")
        elif r.review_status == 200:
            want = Stage.accepted if approve else Stage.rejected
            if r.final.stage is not want or len(reviews) != 1:
                bad.append(
                    f"{sid}: review taken, but {r.final.stage.value}, {len(reviews)} reviews"
                )
        elif r.final.stage is not Stage.rejected or reviews or decision is None:
            bad.append(f"{sid}: review refused ({r.review_reason}) but {r.final.stage.value}")
        elif "review_timeout" not in decision.reasons:
            bad.append(f"{sid}: review refused, rejected for {decision.reasons}")
    return Verdict("a reviewer decision taken is the one committed; one refused changed nothing",
                   checked, bad)  # fmt: skip
