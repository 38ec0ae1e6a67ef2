"""`signgate ops` on the real embedded stack: show, list, export-history and replay of the
demo's sessions, invoked as a user would call them.

Each command runs in a subprocess (the typer app `ops_app` itself, so this does not depend
on how `cli/main.py` mounts it): the CLI runs its own event loop, while the stack's worker
must keep running on the test loop to answer the `status` query."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response

from cli.demo import DemoReport, run_demo
from signgate.client import GatewayClient
from signgate.models import ArtifactKind, CaptureMetadata, Stage
from signgate.settings import Settings
from tests.support import HISTORIES_DIR, free_port, jpeg_bytes, serve_app
from workers.history import history_facts, load_history_file
from workers.stack import embedded_stack


def _settings(var_dir: Path) -> Settings:
    return Settings(
        var_dir=var_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
        gateway_port=free_port(),
        sandbox_port=free_port(),
        callback_allowed_hosts=["127.0.0.1"],
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ops_demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Settings, DemoReport]]:
    settings = _settings(tmp_path_factory.mktemp("ops") / "var")
    async with embedded_stack(settings, ui=False):
        report = await run_demo(settings)
        yield settings, report


OPS = [sys.executable, "-c", "from cli.ops import ops_app; ops_app(prog_name='signgate ops')"]


class OpsRunner:
    def __init__(self, settings: Settings) -> None:
        self.env = dict(os.environ)
        self.env.update(
            SIGNGATE_VAR_DIR=str(settings.var_dir),
            SIGNGATE_TEMPORAL_ADDRESS=settings.temporal_address,
            SIGNGATE_GATEWAY_PORT=str(settings.gateway_port),
            SIGNGATE_SANDBOX_PORT=str(settings.sandbox_port),
            COLUMNS="250",  # wide rich tables: no wrapped hashes in the assertions
        )

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *OPS, *args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def ops(ops_demo: tuple[Settings, DemoReport]) -> OpsRunner:
    return OpsRunner(ops_demo[0])


def _session(report: DemoReport, scenario: str) -> str:
    return next(s.session_id for s in report.sessions if s.scenario == scenario)


async def test_show_has_the_decision_checks_and_ledger_receipts(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport]
) -> None:
    _, report = ops_demo
    sid = _session(report, "borderline")
    code, out, err = await ops("show", sid, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["session_id"] == sid
    assert shown["status_source"] == "query"
    assert shown["stage"] == "accepted"
    decision = shown["decision"]
    assert decision["action"] == "accept" and decision["decided_by"] == "reviewer:rev-alice"
    assert decision["policy"]["policy_id"] and len(decision["policy"]["sha256"]) == 64
    assert {c["kind"] for c in shown["checks"]} == {
        "liveness",
        "deepfake",
        "face_match",
        "device",
        "provenance",
    }
    assert all(c["provider"] and c["model_version"] for c in shown["checks"])
    types = [e["entry_type"] for e in shown["ledger"]]
    assert types[0] == "evidence_sealed" and types[-2:] == ["decision", "signing_unlocked"]
    assert "review" in types
    decision_row = next(e for e in shown["ledger"] if e["entry_type"] == "decision")
    demo_row = next(s for s in report.sessions if s.session_id == sid)
    assert decision_row["seq"] == demo_row.ledger_seq
    assert "evidence_submitted" in {s["name"] for s in shown["signals"]}
    (update,) = shown["updates"]
    assert update["name"] == "review" and update["reviewer_id"] == "rev-alice"
    assert update["approve"] is True and update["completed"] is True
    assert [t["stage"] for t in shown["timeline"]][-1] == "accepted"

    code, table, err = await ops("show", sid)
    assert code == 0, err
    for text in ("decision", "accept", "ledger receipts", "signing_unlocked", "rev-alice"):
        assert text in table


async def test_show_without_the_query_reads_history_and_ledger(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport]
) -> None:
    _, report = ops_demo
    sid = _session(report, "deepfake")
    code, out, err = await ops("show", sid, "--no-query", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status_source"] == "history+ledger"
    assert shown["stage"] == "rejected" and shown["execution_status"] == "completed"
    # Read from the history: the status set at start, then the upserts of the stages a
    # session rests in (sparse upserts).
    assert [t["stage"] for t in shown["timeline"]][:2] == ["awaiting_capture", "checking"]
    assert shown["decision"]["action"] == "reject"
    deepfake = next(c for c in shown["checks"] if c["kind"] == "deepfake")
    assert deepfake["provider"] and deepfake["risk_score"] is not None
    assert shown["search_attributes"]["RiskTier"] == "red"
    assert [e["entry_type"] for e in shown["ledger"]][-1] == "decision"


async def test_history_facts_of_a_golden_review_history() -> None:
    facts = await history_facts(
        load_history_file(HISTORIES_DIR / "review_approved_borderline.json")
    )
    assert facts.closed == "completed"
    assert "awaiting_review" in [s.stage.value for s in facts.stages]
    assert [s.name for s in facts.signals] == ["evidence_submitted"]
    (update,) = facts.updates
    assert (update.name, update.reviewer_id, update.role) == ("review", "rev-alice", "reviewer")
    assert update.approve is True and update.completed
    assert facts.result is not None and facts.result.decision is not None
    assert facts.result.decision.action.value == "accept"


async def test_show_of_an_unknown_session_is_session_not_found(ops: OpsRunner) -> None:
    code, _, err = await ops("show", "no-such-session-0000")
    assert code == 2
    assert "error session_not_found:" in err


async def test_list_filters_by_status_and_tier(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport]
) -> None:
    _, report = ops_demo
    code, out, err = await ops("list", "--status", "rejected", "--json")
    assert code == 0, err
    rejected = {row["session_id"] for row in json.loads(out)["sessions"]}
    assert _session(report, "deepfake") in rejected
    assert _session(report, "bona_fide") not in rejected

    code, out, err = await ops("list", "--status", "accepted", "--json")
    assert code == 0, err
    accepted = json.loads(out)["sessions"]
    assert {_session(report, "bona_fide"), _session(report, "borderline")} <= {
        row["session_id"] for row in accepted
    }
    assert all(row["status"] == "accepted" for row in accepted)
    starts = [row["start_time"] for row in accepted]
    assert starts == sorted(starts, reverse=True)

    code, out, err = await ops("list", "--tier", "red", "--json")
    assert code == 0, err
    red = json.loads(out)["sessions"]
    assert _session(report, "deepfake") in {row["session_id"] for row in red}
    assert all(row["risk_tier"] == "red" for row in red)
    code, out, _ = await ops("list", "--tier", "red", "--tenant", "nobody", "--json")
    assert json.loads(out)["sessions"] == []


async def test_list_pages_with_a_token(ops: OpsRunner) -> None:
    code, out, err = await ops("list", "--limit", "1", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert len(first["sessions"]) == 1 and first["next_page_token"]
    code, out, err = await ops(
        "list", "--limit", "1", "--page-token", first["next_page_token"], "--json"
    )
    assert code == 0, err
    second = json.loads(out)
    assert len(second["sessions"]) == 1
    assert second["sessions"][0]["session_id"] != first["sessions"][0]["session_id"]
    code, table, _ = await ops("list")
    assert code == 0 and "OnboardingWorkflow" in table
    code, _, err = await ops("list", "--page-token", "@@@")
    assert code == 2 and "error bad_page_token:" in err


async def test_exported_history_replays_and_a_tampered_one_fails(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    _, report = ops_demo
    sid = _session(report, "bona_fide")
    good = tmp_path / "good"
    code, _, err = await ops("export-history", sid, "--out", str(good / f"{sid}.json"))
    assert code == 0, err
    text = (good / f"{sid}.json").read_text()
    assert json.loads(text)["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"

    code, out, err = await ops("replay", "--from", str(good))
    assert code == 0, out + err
    assert f"ok      {sid}" in out

    bad = tmp_path / "bad"
    bad.mkdir()
    tampered = text.replace('"name": "seal_evidence"', '"name": "seal_evidence_v0"')
    assert tampered != text
    (bad / f"onboarding-{sid}.json").write_text(tampered)
    code, out, err = await ops("replay", "--from", str(bad))
    assert code == 1
    assert f"FAILED  {sid} nondeterminism" in out
    assert "seal_evidence" in out  # the message names the diverging activity

    code, out, _ = await ops("replay", "--from", str(bad), "--json")
    assert code == 1
    (failure,) = json.loads(out)["failed"]
    assert failure["session_id"] == sid and failure["nondeterminism"]


async def test_replay_of_live_sessions_by_id_and_by_query(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport]
) -> None:
    _, report = ops_demo
    ids = [s.session_id for s in report.sessions]
    code, out, err = await ops("replay", *ids)
    assert code == 0, out + err
    assert f"{len(ids)} replayed, 0 failed" in out

    code, out, err = await ops(
        "replay", "--query", "WorkflowType = 'OnboardingWorkflow'", "--limit", "2", "--json"
    )
    assert code == 0, out + err
    assert json.loads(out) == {"replayed": 2, "failed": []}

    code, _, err = await ops("replay", "no-such-session-0000")
    assert code == 2 and "session_not_found" in err
    code, _, err = await ops("replay")
    assert code == 2 and "nothing_to_replay" in err


async def test_show_lists_status_event_deliveries_and_their_attempts(
    ops: OpsRunner, ops_demo: tuple[Settings, DemoReport]
) -> None:
    settings, _ = ops_demo
    received: list[str] = []
    receiver = FastAPI()

    @receiver.post("/hooks")
    async def hook(request: Request) -> Response:
        received.append(request.headers["X-Event-Id"])
        # The app is down for the first delivery attempt only.
        return Response(status_code=503 if len(received) == 1 else 200)

    async with (
        serve_app(receiver) as receiver_url,
        GatewayClient(settings.gateway_url, settings.api_key_for("app")) as app,
    ):
        created = await app.create_session(
            subject_ref="user-ops", intent="sign:ops", callback_url=f"{receiver_url}/hooks"
        )
        sid = created["session_id"]
        ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
        await app.submit(sid, [ref], CaptureMetadata(challenge_nonce=created["challenge_nonce"]))
        assert (await app.wait_for(sid, timeout_s=60)).stage is Stage.accepted
        for _ in range(300):  # the decision is retried after a 2 s backoff
            shown = json.loads((await ops("show", sid, "--json"))[1])
            if {d["state"] for d in shown["deliveries"]} == {"delivered"}:
                break
            await asyncio.sleep(0.1)

    rows = {d["type"]: d for d in shown["deliveries"]}
    assert set(rows) == {"decision", "unlocked"}
    assert rows["decision"]["event_id"] == f"{sid}:decision"
    assert rows["decision"]["state"] == "delivered" and rows["decision"]["attempts"] == 2
    assert "503" in (rows["decision"]["last_failure"] or "")
    assert rows["unlocked"]["state"] == "delivered" and rows["unlocked"]["attempts"] == 1
    assert received.count(f"{sid}:decision") == 2
    code, table, err = await ops("show", sid)
    assert code == 0, err
    assert "status events to the app" in table and f"{sid}:unlocked" in table
