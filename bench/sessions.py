"""Start sessions straight on Temporal, as the gateway does, and time them.

Benchmarks of the orchestration leave HTTP out but keep the gateway's calls: start the
workflow, query `status` for the capture challenge, signal `evidence_submitted` with a
capture (already in the evidence store) that echoes it, then wait for the result.
Captures are stored before the clock starts: uploading is measured by `bench.ingest`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from chaos.drive import CAPTURE_KINDS, noise_jpeg
from gateway.onboarding import start_search_attributes
from signgate.evidence_stores import open_evidence_store
from signgate.models import (
    ArtifactRef,
    CaptureMetadata,
    EvidenceSubmission,
    OnboardingRequest,
    SessionTimeouts,
)
from signgate.settings import Settings

WORKFLOW_TYPE = "OnboardingWorkflow"  # as the gateway starts it


@dataclass(frozen=True)
class Prepared:
    request: OnboardingRequest
    artifacts: list[ArtifactRef]
    scenario: str


def prepare(settings: Settings, n: int, scenario: str = "bona_fide") -> list[Prepared]:
    store = open_evidence_store(settings)
    prepared = []
    for _ in range(n):
        sid = f"b{uuid.uuid4().hex[:16]}"
        refs = [
            store.put_bytes(kind, noise_jpeg(f"{sid}:{kind}"), content_type="image/jpeg")
            for kind in CAPTURE_KINDS
        ]
        request = OnboardingRequest(
            session_id=sid,
            tenant_id="demo",
            subject_ref="bench-user",
            intent="sign:bench",
            reviewers=settings.reviewer_roster(),
            timeouts=SessionTimeouts(review_sla_s=86400, review_final_s=2 * 86400),
        )
        prepared.append(Prepared(request, refs, scenario))
    return prepared


@dataclass(frozen=True)
class Started:
    handle: WorkflowHandle[object, object]
    submitted_at: float  # perf_counter() as the capture was submitted (the signal sent)


async def start(
    client: Client, task_queue: str, p: Prepared, workflow: str = WORKFLOW_TYPE
) -> Started:
    """Start, read the challenge, submit the capture: the gateway's three calls."""
    handle: WorkflowHandle[object, object] = await client.start_workflow(
        workflow,
        p.request,
        id=f"onboarding-{p.request.session_id}",
        task_queue=task_queue,
        search_attributes=start_search_attributes(p.request.tenant_id),
    )
    deadline = time.monotonic() + 120
    while True:  # the first workflow task issues the challenge
        try:
            status = await handle.query("status", result_type=dict)
            if status.get("challenge_nonce"):
                break
        except RPCError:
            pass  # a query timed out on a loaded machine: ask again, as the gateway's caller would
        if time.monotonic() > deadline:
            raise TimeoutError(f"{p.request.session_id}: no challenge within 120 s")
        await asyncio.sleep(0.02)
    capture = CaptureMetadata(challenge_nonce=str(status["challenge_nonce"]), scenario=p.scenario)
    submitted_at = time.perf_counter()
    await handle.signal(
        "evidence_submitted", EvidenceSubmission(artifacts=p.artifacts, capture=capture)
    )
    return Started(handle, submitted_at)


async def run_one(
    client: Client, task_queue: str, p: Prepared, workflow: str = WORKFLOW_TYPE
) -> tuple[float, dict[str, object]]:
    """Seconds from the start to the workflow's result, and the result."""
    total, _, result = await run_one_timed(client, task_queue, p, workflow)
    return total, result


async def run_one_timed(
    client: Client, task_queue: str, p: Prepared, workflow: str = WORKFLOW_TYPE
) -> tuple[float, float, dict[str, object]]:
    """Seconds from the start, and from the capture's submission (the signal), to the
    workflow's result; and the result."""
    started_at = time.perf_counter()
    started = await start(client, task_queue, p, workflow)
    result = await started.handle.result()  # no type hint: the converter gives plain JSON
    assert isinstance(result, dict)
    done = time.perf_counter()
    return done - started_at, done - started.submitted_at, result


async def run_many(
    client: Client,
    task_queue: str,
    prepared: list[Prepared],
    concurrency: int,
    workflow: str = WORKFLOW_TYPE,
) -> tuple[float, list[float], list[dict[str, object]]]:
    """Sessions per second with `concurrency` in flight, each latency, each result."""
    gate = asyncio.Semaphore(concurrency)

    async def one(p: Prepared) -> tuple[float, dict[str, object]]:
        async with gate:
            return await run_one(client, task_queue, p, workflow)

    started = time.perf_counter()
    done = await asyncio.gather(*(one(p) for p in prepared))
    elapsed = time.perf_counter() - started
    return len(prepared) / elapsed, [d[0] for d in done], [d[1] for d in done]


def percentile(values: list[float], q: float) -> float:
    """q in 0..100, by linear interpolation (statistics.quantiles, inclusive)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]
