"""The chaos run: N sessions through the stack while workers and the server are killed.

Sessions follow a fixed mix of plans (`PLANS`), started a few at a time. Meanwhile one
task SIGKILLs a random worker every few seconds and starts a new one, and once, when
about a third of the sessions have started, the Temporal dev server is SIGKILLed and
started again on its SQLite file. When every session has settled (or the deadline has
passed), the invariants in `chaos.invariants` are checked and printed as a table.

Every replacement worker imports the code in the working tree when it starts: leave the
tree alone while a run is going, or sessions run on a mix of versions and the replay
invariant reports what was changed, not what is wrong.
"""

from __future__ import annotations

import asyncio
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from chaos.drive import SETTLED_STAGES, Driver, Plan, Retries, SessionRecord
from chaos.invariants import Verdict, check_all, histories_replay
from chaos.stack import Stack, StackConfig
from signgate.models import OnboardingStatus, SessionTimeouts

HIGH = 0.97
# Generous for a loaded 2-core machine; vendor_hangs answers only after 6 s.
VENDOR_TIMEOUT_S = 3.0  # a genuine deepfake verdict, as a vendor sends it

# (plan, weight). The sandbox answers by itself unless the driver plays the vendor.
PLANS: list[tuple[Plan, int]] = [
    (Plan("bona_fide", "bona_fide"), 6),
    (Plan("deepfake", "deepfake", may_accept=False), 3),
    (Plan("virtual_camera", "virtual_camera", may_accept=False), 1),
    (Plan("borderline, approved", "borderline", review="approve"), 2),
    (Plan("borderline, rejected", "borderline", review="reject", may_accept=False), 1),
    (Plan("borderline, review races timeout", "borderline", review="race"), 3),
    (Plan("borderline, never reviewed", "borderline", may_accept=False), 1),
    (Plan("poor capture, step-up", "poor_capture", step_up=True), 1),
    (Plan("vendor 5xx", "vendor_down", may_accept=False), 1),
    (Plan("vendor 5xx, approved", "vendor_down", review="approve"), 1),
    (Plan("vendor flaky 5xx then ok", "flaky_vendor"), 1),
    (Plan("vendor timeout", "vendor_hangs", may_accept=False), 1),
    (Plan("vendor garbage JSON", "garbage_json", may_accept=False), 1),
    (Plan("vendor HTML", "garbage", may_accept=False), 1),
    (Plan("vendor wrong content type", "wrong_content_type", may_accept=False), 1),
    (Plan("sandbox webhook", "slow_webhook"), 1),
    (Plan("webhooks duplicated", "no_webhook", webhooks="duplicated"), 2),
    (Plan("webhooks reordered", "no_webhook", webhooks="reordered"), 2),
    (
        Plan(
            "webhooks forged", "no_webhook", webhooks="forged", genuine_risk=HIGH, may_accept=False
        ),
        2,
    ),  # fmt: skip
    (
        Plan("webhooks stale", "no_webhook", webhooks="stale", genuine_risk=HIGH, may_accept=False),
        1,
    ),  # fmt: skip
    (Plan("webhooks never sent", "no_webhook", webhooks="never", may_accept=False), 1),
    (Plan("no capture", "bona_fide", capture=False, may_accept=False), 1),
]

# Short, so review races and every safe branch happen within the run.
CHAOS_TIMEOUTS = SessionTimeouts(
    capture_s=60, vendor_webhook_s=30, step_up_s=30, review_sla_s=5, review_final_s=12
)


@dataclass
class ChaosReport:
    n: int
    seed: int
    workers: int
    started_at: datetime
    duration_s: float
    records: list[SessionRecord]
    verdicts: list[Verdict]
    faults: Counter[str] = field(default_factory=Counter)
    retries: Retries = field(default_factory=Retries)

    @property
    def ok(self) -> bool:
        return all(not v.violations for v in self.verdicts)


def pick_plans(n: int, rng: random.Random) -> list[Plan]:
    """Every plan at least once when n allows, then by weight; shuffled."""
    plans = [p for p, _ in PLANS][:n]
    population, weights = zip(*PLANS, strict=True)
    plans += rng.choices(population, weights, k=n - len(plans))
    rng.shuffle(plans)
    return plans


async def run_chaos(
    n: int,
    var_dir: Path,
    *,
    seed: int = 7,
    workers: int = 2,
    concurrency: int = 12,
    kill_every_s: tuple[float, float] = (4.0, 10.0),
    crash_server: bool = True,
    deadline_s: float = 2400.0,
    settle_s: float = 150.0,
) -> ChaosReport:
    """`deadline_s` bounds the driving; then up to `settle_s` more for sessions still in
    flight (an activity whose worker was SIGKILLed is retried after its heartbeat timeout,
    10 s, for sealing and checks, and after its 30 s start-to-close timeout for the
    others)."""
    rng = random.Random(seed)
    config = StackConfig(
        var_dir=var_dir, timeouts=CHAOS_TIMEOUTS, vendor_timeout_s=VENDOR_TIMEOUT_S, hang_s=6.0
    )
    faults: Counter[str] = Counter()
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    records = [SessionRecord(plan) for plan in pick_plans(n, rng)]
    async with Stack(config) as stack:
        await stack.start(workers=workers)
        driver = Driver(stack.settings, rng, review_window_s=CHAOS_TIMEOUTS.review_final_s + 4)
        gate = asyncio.Semaphore(concurrency)
        driven = 0
        crash_at = max(1, n // 3) if crash_server else -1
        crashed = asyncio.Event()

        async def one(record: SessionRecord) -> None:
            nonlocal driven
            async with gate:
                await driver.run(record)
                driven += 1
                if driven == crash_at:  # the others are in flight: crash under them
                    asyncio.create_task(crash_server_once(stack, faults, crashed))
                if record.session_id:
                    try:
                        await driver.wait_for(record.session_id, SETTLED_STAGES, 120)
                    except Exception as err:
                        record.error = f"waiting: {type(err).__name__}: {err}"

        killer = asyncio.create_task(kill_workers(stack, rng, kill_every_s, workers, faults))
        try:
            await asyncio.wait_for(asyncio.gather(*(one(r) for r in records)), timeout=deadline_s)
        except TimeoutError:
            pass  # whatever is unsettled is reported as stuck below
        finally:
            killer.cancel()
        await settle(driver, records, settle_s)
        for record in records:
            if record.session_id:
                record.final = await final_status(driver, stack, record)
        await driver.aclose()
        retries = driver.retries
        await note_recovering(stack, records)
        for record in records:
            faults.update(record.faults)
            faults[f"vendor: {record.plan.sandbox}"] += record.plan.sandbox in FAULTY_SANDBOX
        verdicts = check_all(records, stack.settings, stack.env())
        assert stack.client is not None
        verdicts.append(await histories_replay(stack.client, stack.settings, records))
    faults = Counter({k: v for k, v in faults.items() if v})
    return ChaosReport(
        n, seed, workers, started_at, time.monotonic() - t0, records, verdicts, faults, retries
    )


async def settle(driver: Driver, records: list[SessionRecord], settle_s: float) -> None:
    """Wait (bounded) until every session is settled: terminal or awaiting review."""
    deadline = time.monotonic() + settle_s
    for record in records:
        if record.session_id:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await driver.wait_for(record.session_id, SETTLED_STAGES, remaining)
            except Exception as err:
                record.error = f"settling: {type(err).__name__}: {err}"


async def final_status(
    driver: Driver, stack: Stack, record: SessionRecord
) -> OnboardingStatus | None:
    """Through the gateway; if it cannot answer (503 while Temporal is slow), the same
    `status` query straight on Temporal, so an unanswered query is not taken for a loss."""
    try:
        return await driver.status(record.session_id)
    except Exception as err:
        record.error = f"final status through the gateway: {type(err).__name__}: {err}"
    assert stack.client is not None
    handle = stack.client.get_workflow_handle(f"onboarding-{record.session_id}")
    for _ in range(10):
        try:
            return await handle.query("status", result_type=OnboardingStatus)
        except Exception as err:
            record.error = f"final status from Temporal: {type(err).__name__}: {err}"
            await asyncio.sleep(3)
    return None


async def note_recovering(stack: Stack, records: list[SessionRecord]) -> None:
    """For each unsettled session, name what it waits on: an activity started by a worker
    we SIGKILLed is not stuck, it is retried when its heartbeat timeout (sealing, checks)
    or its start-to-close timeout (the others) expires."""
    assert stack.client is not None
    killed = {f"{pid}@" for pid in stack.killed_pids}
    for record in records:
        if not record.session_id or (record.final and record.final.stage in SETTLED_STAGES):
            continue
        handle = stack.client.get_workflow_handle(f"onboarding-{record.session_id}")
        try:
            raw = (await handle.describe()).raw_description
        except Exception as err:
            record.waiting_on = f"describe failed: {type(err).__name__}"
            continue
        for pending in raw.pending_activities:
            worker = pending.last_worker_identity
            if any(worker.startswith(k) for k in killed):
                record.recovering = True
                record.waiting_on = (
                    f"{pending.activity_type.name} attempt {pending.attempt}, started by "
                    f"SIGKILLed worker {worker}: retried when its timeout expires"
                )
            else:
                record.waiting_on = f"{pending.activity_type.name} on {worker or 'no worker'}"


FAULTY_SANDBOX = {"vendor_down", "flaky_vendor", "vendor_hangs", "garbage_json", "garbage",
                  "wrong_content_type"}  # fmt: skip


async def kill_workers(
    stack: Stack,
    rng: random.Random,
    every_s: tuple[float, float],
    keep: int,
    faults: Counter[str],
) -> None:
    """SIGKILL a random live worker every few seconds; start a new one in its place."""
    while True:
        await asyncio.sleep(rng.uniform(*every_s))
        live = stack.live_workers()
        if live:
            stack.kill_worker(rng.choice(live))
            faults["worker SIGKILL"] += 1
        while len(stack.live_workers()) < keep:
            stack.start_worker()


async def crash_server_once(stack: Stack, faults: Counter[str], done: asyncio.Event) -> None:
    await stack.crash_and_restart_server()
    faults["Temporal dev server SIGKILL + restart"] += 1
    done.set()


def render(report: ChaosReport) -> str:
    """The RELIABILITY.md section: what was run, what was injected, what came out."""
    outcomes = Counter(
        (r.plan.name, r.final.stage.value if r.final else "lost") for r in report.records
    )
    by_plan: dict[str, Counter[str]] = {}
    for (plan, stage), count in outcomes.items():
        by_plan.setdefault(plan, Counter())[stage] = count
    stages = Counter(r.final.stage.value if r.final else "lost" for r in report.records)
    lines = [
        f"Run {report.started_at:%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}): N={report.n} sessions, "
        f"seed {report.seed}, {report.workers} workers, {report.duration_s:.0f} s. Timeouts: "
        f"{CHAOS_TIMEOUTS.model_dump()}; vendor timeout {VENDOR_TIMEOUT_S:.0f} s.",
        "",
        "| invariant | checked | violations |",
        "|---|---|---|",
    ]
    lines += [f"| {v.name} | {v.checked} | {len(v.violations)} |" for v in report.verdicts]
    lines += ["", "| fault injected | count |", "|---|---|"]
    lines += [f"| {kind} | {count} |" for kind, count in sorted(report.faults.items())]
    if report.retries.count:
        header = "| the app retried after (5xx, connection error) | attempts | s, with back-off |"
        lines += ["", header, "|---|---|---|"]
        lines += [
            f"| {seen} | {count} | {report.retries.seconds[seen]:.0f} |"
            for seen, count in report.retries.count.most_common()
        ]
    lines += ["", "| plan | sessions | outcomes |", "|---|---|---|"]
    for plan, counts in sorted(by_plan.items()):
        shown = ", ".join(f"{stage} {c}" for stage, c in sorted(counts.items()))
        lines.append(f"| {plan} | {sum(counts.values())} | {shown} |")
    races = [r for r in report.records if r.plan.review == "race" and r.review_status]
    if races:
        won = sum(r.review_status == 200 for r in races)
        refused = len(races) - won
        lines += ["", f"Review races: {won} of {len(races)} reviewer approvals were taken "
                  f"(200) before the final timeout; {refused} "
                  f"{'was' if refused == 1 else 'were'} refused after it. A taken approval "
                  "accepts only if it is the last one the session needs."]  # fmt: skip
    lines += ["", "Outcomes: " + ", ".join(f"{s} {c}" for s, c in sorted(stages.items())) + "."]
    unstarted = sum(1 for r in report.records if not r.session_id and r.error is None)
    if unstarted:
        lines += ["", f"Not started before the run's deadline: {unstarted}."]
    recovering = [r for r in report.records if r.recovering]
    if recovering:
        lines += ["", f"Still recovering at the end ({len(recovering)}): " + "; ".join(
            f"{r.session_id} ({r.plan.name}): {r.waiting_on}" for r in recovering[:5])]  # fmt: skip
    errors = [f"{r.session_id}: {r.error}" for r in report.records if r.error]
    if errors:
        lines += ["", f"Driver errors ({len(errors)}): " + "; ".join(errors[:5])]
    for verdict in report.verdicts:
        for violation in verdict.violations[:10]:
            lines.append(f"- VIOLATION ({verdict.name}): {violation}")
    return "\n".join(lines) + "\n"
