"""The retention sweep on the real dev server: workflow, activity, schedule, ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow

from activities.deps import ActivityDeps
from signgate.envelope import EvidenceErased
from signgate.erasure import Erasure
from signgate.models import ArtifactKind, ArtifactRef, CaptureMetadata
from signgate.retention import RetentionSweepInput, RetentionSweepReport
from signgate.sealing import seal_round
from signgate.settings import Settings
from signgate.signer import KeyRing
from tests.conftest import RunningDevServer
from workers.onboarding_worker import build_worker
from workers.retention_schedule import ensure_retention_schedule
from workflows.retention import RetentionSweepWorkflow

OLD, HELD, FAST = "sess-old-0001", "sess-held-001", "sess-fast-001"
FAST_TENANT = "fast-tenant"  # per-tenant override: 0 days, due as soon as sealed


@dataclass
class World:
    settings: Settings
    deps: ActivityDeps
    client: Client
    refs: dict[str, ArtifactRef]


def seed(deps: ActivityDeps, session_id: str, tenant_id: str) -> ArtifactRef:
    """One sealed session with a decision naming its tenant, as the saga leaves it."""
    ref = deps.store.put_bytes(
        ArtifactKind.selfie, f"selfie of {session_id}".encode(), "image/jpeg", session_id=session_id
    )
    capture = CaptureMetadata(challenge_nonce="n")
    seal = seal_round(deps.store, deps.signer, session_id, 1, [ref], capture, "n")
    deps.ledger.append(
        session_id, "evidence_sealed", f"{session_id}:evidence_sealed:1", seal.model_dump()
    )
    deps.ledger.append(session_id, "decision", f"{session_id}:decision", {"tenant_id": tenant_id})
    return ref


@pytest_asyncio.fixture(loop_scope="session")
async def world(dev_server: RunningDevServer, tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        var_dir=tmp_path / "var",
        task_queue=f"retention-{uuid.uuid4().hex[:8]}",
        evidence_retention_days=30,
        evidence_retention_days_by_tenant={FAST_TENANT: 0},
    )
    deps = ActivityDeps.from_settings(settings)
    refs = {
        sid: seed(deps, sid, tenant)
        for sid, tenant in ((OLD, "demo"), (HELD, "demo"), (FAST, FAST_TENANT))
    }
    assert deps.store.data_keys is not None
    Erasure(deps.ledger, deps.store.data_keys).hold(HELD, by="legal", reason="litigation")
    try:
        async with build_worker(dev_server.client, settings, deps):
            yield World(settings, deps, dev_server.client, refs)
    finally:
        await deps.aclose()


def readable(world: World, session_id: str) -> bool:
    try:
        return world.deps.store.verify(world.refs[session_id])
    except EvidenceErased:
        return False


async def test_sweep_erases_what_is_past_its_window_and_skips_a_held_session(
    world: World,
) -> None:
    as_of = datetime.now(UTC) + timedelta(days=31)
    report = await world.client.execute_workflow(
        RetentionSweepWorkflow.run,
        RetentionSweepInput(as_of=as_of),
        id=f"sweep-{uuid.uuid4().hex[:8]}",
        task_queue=world.settings.task_queue,
        execution_timeout=timedelta(seconds=60),
    )
    assert report.erased == [FAST, OLD]
    assert report.skipped_on_hold == [HELD]
    assert not readable(world, OLD) and not readable(world, FAST)
    assert readable(world, HELD)
    erased = [e for e in world.deps.ledger.entries(OLD) if e.entry_type == "evidence_erased"]
    assert erased[0].body["trigger"] == "retention"
    assert world.deps.ledger.verify(KeyRing.from_dir(world.settings.keys_dir)).ok


async def test_schedule_exists_after_start_and_triggering_it_runs_the_sweep(
    world: World,
) -> None:
    schedule_id = await ensure_retention_schedule(world.client, world.settings)
    assert await ensure_retention_schedule(world.client, world.settings) == schedule_id
    handle = world.client.get_schedule_handle(schedule_id)
    try:
        described = await handle.describe()
        assert described.id == schedule_id
        await handle.trigger()
        report = await _first_scheduled_result(world.client, handle.id)
        # As of now, only the tenant with a 0-day window is due; the others wait 30 days.
        assert report.erased == [FAST]
        assert report.skipped_on_hold == []
        assert not readable(world, FAST) and readable(world, OLD)
    finally:
        await handle.delete()


async def _first_scheduled_result(client: Client, schedule_id: str) -> RetentionSweepReport:
    handle = client.get_schedule_handle(schedule_id)
    for _ in range(200):  # bounded: 20 s
        recent = (await handle.describe()).info.recent_actions
        if recent:
            action = recent[0].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            run = client.get_workflow_handle(
                action.workflow_id,
                run_id=action.first_execution_run_id,
                result_type=RetentionSweepReport,
            )
            return await asyncio.wait_for(run.result(), timeout=30)
        await asyncio.sleep(0.1)
    raise AssertionError("the triggered schedule started no sweep within 20 s")
