"""The embedded Temporal dev server: it answers, it refuses a taken port in one clear
sentence, and a workflow parked on a timer outlives a kill -9 of the server."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

with workflow.unsafe.imports_passed_through():
    # The sandbox re-imports this module to run the workflow below; pass these through
    # rather than loading a second copy of pytest and our server code inside it.
    import pytest
    from temporalio.worker import Worker

    from workers.devserver import DevServer
    from workers.ports import PortInUse
    from workers.search_attributes import missing_search_attributes

if TYPE_CHECKING:
    from tests.conftest import RunningDevServer


class Ticket(BaseModel):
    ticket_id: str


class Release(BaseModel):
    released_by: str


class Receipt(BaseModel):
    ticket_id: str
    released_by: str


@workflow.defn
class ParkedWorkflow:
    """Waits for a `release` signal, with a one-hour timer as its safe branch."""

    def __init__(self) -> None:
        self._release: Release | None = None

    @workflow.run
    async def run(self, ticket: Ticket) -> Receipt:
        try:
            await workflow.wait_condition(
                lambda: self._release is not None, timeout=timedelta(hours=1)
            )
        except TimeoutError:
            return Receipt(ticket_id=ticket.ticket_id, released_by="timeout")
        assert self._release is not None
        return Receipt(ticket_id=ticket.ticket_id, released_by=self._release.released_by)

    @workflow.signal
    def release(self, release: Release) -> None:
        self._release = release


async def test_dev_server_answers_with_search_attributes_registered(
    dev_server: RunningDevServer,
) -> None:
    assert dev_server.server.running
    assert dev_server.address.startswith("127.0.0.1:")
    assert await dev_server.client.service_client.check_health()
    assert await missing_search_attributes(dev_server.client) == []


async def test_second_server_on_a_taken_port_fails_fast_naming_the_port(
    dev_server: RunningDevServer, tmp_path: Path
) -> None:
    taken = dev_server.server.port
    second = DevServer(db_path=tmp_path / "second.db", port=taken, ui_port=None)
    started = time.monotonic()
    with pytest.raises(PortInUse) as refused:
        await asyncio.wait_for(second.start(), timeout=10)
    assert time.monotonic() - started < 2
    assert refused.value.reason == "port_in_use"
    assert f"port {taken} (Temporal frontend)" in refused.value.message
    assert "SIGNGATE_TEMPORAL_ADDRESS" in refused.value.message
    assert not second.running
    assert dev_server.server.running


async def test_parked_workflow_survives_kill_9_and_restart_on_the_same_file(
    dev_server: RunningDevServer,
) -> None:
    task_queue = f"durability-{uuid.uuid4()}"
    workflow_id = f"parked-{uuid.uuid4()}"
    async with Worker(dev_server.client, task_queue=task_queue, workflows=[ParkedWorkflow]):
        handle = await dev_server.client.start_workflow(
            ParkedWorkflow.run,
            Ticket(ticket_id="t-1"),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=5),
        )
        await asyncio.wait_for(_timer_started(handle), timeout=15)

    pid_before = dev_server.server.pid
    dev_server.server.kill()
    assert not dev_server.server.running
    client = await asyncio.wait_for(dev_server.restart(), timeout=90)
    assert dev_server.server.pid != pid_before

    # A new worker on the new client, as a restarted worker process would be.
    async with Worker(client, task_queue=task_queue, workflows=[ParkedWorkflow]):
        after = client.get_workflow_handle(workflow_id, result_type=Receipt)
        assert (await after.describe()).status is WorkflowExecutionStatus.RUNNING
        await after.signal(ParkedWorkflow.release, Release(released_by="reviewer"))
        receipt = await asyncio.wait_for(after.result(), timeout=30)
    assert receipt == Receipt(ticket_id="t-1", released_by="reviewer")


async def _timer_started(handle: WorkflowHandle) -> None:
    """Return once the workflow's history shows it parked on its timer."""
    while True:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                return
        await asyncio.sleep(0.1)
