"""End to end: the embedded stack exactly as `signgate dev` runs it (real Temporal dev
server on a SQLite file, worker, gateway, bundled vendor sandbox), driven over HTTP, and
the `signgate` CLI contracts checked as a user would call them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request

from cli.demo import DemoReport, run_demo
from signgate.client import GatewayClient
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, CaptureMetadata, Stage
from signgate.settings import Settings
from signgate.webhooks import sign_webhook, verify_webhook
from tests.support import free_port, jpeg_bytes, serve_app
from workers.stack import embedded_stack

SIGNGATE = [sys.executable, "-m", "cli"]


def stack_settings(var_dir: Path) -> Settings:
    return Settings(
        var_dir=var_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
        gateway_port=free_port(),
        sandbox_port=free_port(),
        callback_allowed_hosts=["127.0.0.1"],
    )


def cli_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SIGNGATE_VAR_DIR=str(settings.var_dir),
        SIGNGATE_GATEWAY_PORT=str(settings.gateway_port),
        SIGNGATE_SANDBOX_PORT=str(settings.sandbox_port),
        SIGNGATE_TEMPORAL_ADDRESS=settings.temporal_address,
    )
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Settings, DemoReport]]:
    settings = stack_settings(tmp_path_factory.mktemp("e2e") / "var")
    async with embedded_stack(settings, ui=False):
        report = await run_demo(settings)
        yield settings, report


async def test_demo_scenarios_reach_their_outcomes(demo_run: tuple[Settings, DemoReport]) -> None:
    _, report = demo_run
    outcomes = {s.scenario: (s.action, s.attestation_valid, s.reviewed_by) for s in report.sessions}
    assert outcomes == {
        "bona_fide": ("accept", True, None),
        "deepfake": ("reject", False, None),
        "borderline": ("accept", True, "rev-alice"),
    }
    assert report.audit_verified


async def test_signing_is_unlocked_strictly_after_the_decision_is_committed(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, report = demo_run
    ledger = SqliteLedger(settings.ledger_path, None)
    for session in report.sessions:
        entries = ledger.entries(session.session_id)
        types = [e.entry_type for e in entries]
        decision = next(e for e in entries if e.entry_type == "decision")
        assert decision.seq == session.ledger_seq
        if session.action == "accept":
            unlocked = next(e for e in entries if e.entry_type == "signing_unlocked")
            assert unlocked.seq > decision.seq
            assert unlocked.body["decision_seq"] == decision.seq
            assert types[-2:] == ["decision", "signing_unlocked"]
        else:
            assert "signing_unlocked" not in types


async def test_forged_webhook_is_refused_and_changes_nothing(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, _ = demo_run
    app_key = settings.api_key_for("app")
    async with GatewayClient(settings.gateway_url, app_key) as app:
        created = await app.create_session(subject_ref="user-x", intent="sign:e2e")
        sid = created["session_id"]
        ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
        await app.submit(
            sid,
            [ref],
            CaptureMetadata(challenge_nonce=created["challenge_nonce"], scenario="no_webhook"),
        )
        before = await app.wait_for(sid, {Stage.checking}, timeout_s=30)
        for _ in range(100):  # wait until all five checks are parked on the vendor
            before = await app.status(sid)
            if len([p for p in before.pending if p != "capture"]) == 5:
                break
            await asyncio.sleep(0.05)
        vendor_ref = before.pending[0].split(":", 1)[1]
        kind = before.pending[0].split(":", 1)[0]
        body = json.dumps(
            {
                "event_id": "evt-forged-1",
                "vendor_ref": vendor_ref,
                "reference": f"{sid}:1:{kind}",
                "check": kind,
                "completed_at": int(time.time()),
                "result": {
                    "check": kind,
                    "risk_score": 0.0,
                    "confidence": 1.0,
                    "attack_hints": [],
                    "model_version": "forged",
                    "explanations": [],
                },
            }
        ).encode()
        forged = sign_webhook("not-the-secret", body, int(time.time()))
        async with httpx.AsyncClient(base_url=settings.gateway_url) as http:
            response = await http.post(
                "/v1/webhooks/vendor",
                content=body,
                headers={"X-Signature": forged, "Content-Type": "application/json"},
            )
            assert response.status_code == 401
            assert response.json()["error"]["reason"] == "webhook_signature_invalid"
            after = await app.status(sid)
            assert after.pending == before.pending
            assert after.stage is Stage.checking

            # The same body, signed with the real secret, is accepted: the refusal above
            # was the signature, not the route.
            genuine = sign_webhook(settings.webhook_secrets[0], body, int(time.time()))
            response = await http.post(
                "/v1/webhooks/vendor",
                content=body,
                headers={"X-Signature": genuine, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            for _ in range(100):
                after = await app.status(sid)
                if len(after.pending) < len(before.pending):
                    break
                await asyncio.sleep(0.05)
            assert f"{kind}:{vendor_ref}" not in after.pending


def test_audit_verify_cli_names_the_first_tampered_entry(
    demo_run: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_run
    env = cli_env(settings)
    ok = subprocess.run(
        [*SIGNGATE, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr

    copy = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(settings.ledger_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as conn:  # an attacker with file access drops the triggers
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        body = conn.execute("SELECT body FROM ledger_entries WHERE seq = 5").fetchone()[0]
        conn.execute(
            "UPDATE ledger_entries SET body = ? WHERE seq = 5", (body.replace("0", "1", 1),)
        )
    broken = subprocess.run(
        [*SIGNGATE, "audit", "verify", "--ledger", str(copy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode != 0
    assert "seq 5" in broken.stderr


def test_attest_verify_cli_accepts_a_real_token_and_refuses_a_tampered_one(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, report = demo_run
    accepted = next(s for s in report.sessions if s.scenario == "bona_fide")
    token = (
        SqliteLedger(settings.ledger_path, None)
        .entries(accepted.session_id)[-1]
        .body["attestation"]
    )
    env = cli_env(settings)
    good = subprocess.run(
        [*SIGNGATE, "attest", "verify", token], env=env, capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["sid"] == accepted.session_id

    header, payload, signature = token.split(".")
    flipped = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
    tampered = ".".join([header, payload, signature[:-4] + flipped])
    bad = subprocess.run(
        [*SIGNGATE, "attest", "verify", tampered],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "attestation_" in bad.stderr


async def test_app_callback_is_signed_and_carries_the_attestation(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, _ = demo_run
    received: list[tuple[str | None, bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hooks")
    async def hook(request: Request) -> dict[str, bool]:
        received.append((request.headers.get("X-Signature"), await request.body()))
        return {"ok": True}

    app_key = settings.api_key_for("app")
    async with (
        serve_app(receiver) as receiver_url,
        GatewayClient(settings.gateway_url, app_key) as app,
    ):
        created = await app.create_session(
            subject_ref="user-cb", intent="sign:callback", callback_url=f"{receiver_url}/hooks"
        )
        sid = created["session_id"]
        ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
        await app.submit(sid, [ref], CaptureMetadata(challenge_nonce=created["challenge_nonce"]))
        status = await app.wait_for(sid, timeout_s=60)
        assert status.stage is Stage.accepted
        for _ in range(200):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.05)

    assert len(received) == 2
    for header, body in received:
        verify_webhook(header, body, settings.webhook_secrets, now=int(time.time()))
    events = {e["type"]: e for e in (json.loads(body) for _, body in received)}
    assert set(events) == {"decision", "unlocked"}
    assert {e["session_id"] for e in events.values()} == {sid}
    assert events["unlocked"]["data"]["attestation"] == status.attestation


async def test_reviewer_cli_lists_the_queue_and_approves(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, _ = demo_run
    app_key = settings.api_key_for("app")
    async with GatewayClient(settings.gateway_url, app_key) as app:
        created = await app.create_session(subject_ref="user-cli", intent="sign:cli")
        sid = created["session_id"]
        ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
        capture = CaptureMetadata(challenge_nonce=created["challenge_nonce"], scenario="borderline")
        await app.submit(sid, [ref], capture)
        await app.wait_for(sid, {Stage.awaiting_review}, timeout_s=30)

        env = cli_env(settings)
        run = asyncio.create_subprocess_exec
        listing = await run(*SIGNGATE, "review", "list", env=env, stdout=subprocess.PIPE)
        out, _ = await asyncio.wait_for(listing.communicate(), timeout=60)
        assert listing.returncode == 0
        assert sid[:12] in out.decode()

        approve = await run(
            *SIGNGATE,
            "review",
            "approve",
            sid,
            "--reason",
            "matches the ID",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(approve.communicate(), timeout=60)
        assert approve.returncode == 0, err.decode()
        assert json.loads(out)["decision_final"] is True
        final = await app.wait_for(sid, timeout_s=30)
    assert final.stage is Stage.accepted
    assert final.decision is not None and final.decision.decided_by == "reviewer:rev-alice"


def test_signgate_dev_refuses_a_taken_port_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "var")
    env = cli_env(settings)
    env["SIGNGATE_TEMPORAL_UI_PORT"] = str(free_port())
    dev = subprocess.Popen(
        [*SIGNGATE, "dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{settings.gateway_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("signgate dev did not come up in 30 s")

        second = subprocess.run(
            [*SIGNGATE, "dev"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        message = " ".join(second.stderr.split())
        assert f"port_in_use: port {settings.gateway_port} (signgate gateway)" in message
        assert "SIGNGATE_GATEWAY_PORT" in message
    finally:
        dev.send_signal(2)  # Ctrl-C
        out, err = dev.communicate(timeout=60)
    assert dev.returncode == 0, err
    assert "stopped cleanly" in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{settings.gateway_url}/healthz", timeout=1)
    # The dev server's port is free again: nothing was left behind.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(settings.temporal_address.split(":")[1])))


def test_audit_bundle_of_a_demo_session_verifies_offline_and_catches_a_changed_byte(
    demo_run: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, report = demo_run
    reviewed = next(s for s in report.sessions if s.scenario == "borderline")
    env = cli_env(settings)
    bundle = tmp_path / "bundle"
    exported = subprocess.run(
        [
            *SIGNGATE,
            "audit",
            "export",
            reviewed.session_id,
            "--out",
            str(bundle),
            "--include-media",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    # The auditor needs nothing of ours: no settings, no ledger, no keys dir.
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    ok = subprocess.run(
        [*SIGNGATE, "audit", "verify-bundle", str(bundle)],
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr

    entries = bundle / "entries.json"
    text = entries.read_text()
    assert "reviewer_approved" in text
    entries.write_text(text.replace("reviewer_approved", "reviewer_approvee", 1))
    bad = subprocess.run(
        [*SIGNGATE, "audit", "verify-bundle", str(bundle)],
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert "entries.json" in bad.stdout + bad.stderr


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        sample, _, rest = key.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample == name and got == wanted:
            return float(value)
    return 0.0


async def test_metrics_count_decisions_check_latency_webhook_refusals_and_the_review_queue(
    demo_run: tuple[Settings, DemoReport],
) -> None:
    settings, _ = demo_run
    app_key = settings.api_key_for("app")
    async with httpx.AsyncClient(base_url=settings.gateway_url) as http:
        before = (await http.get("/metrics")).text
        assert (
            _metric(
                before, "signgate_decisions_total", action="accept", tier="green", mode="enforce"
            )
            >= 1
        )  # the demo's bona fide session
        assert (
            _metric(
                before,
                "signgate_check_latency_seconds_count",
                kind="liveness",
                provider="sandbox",
                status="completed",
            )
            >= 3
        )

        forged = sign_webhook("not-the-secret", b"{}", int(time.time()))
        refused = await http.post(
            "/v1/webhooks/vendor", content=b"{}", headers={"X-Signature": forged}
        )
        assert refused.status_code == 401

        async with GatewayClient(settings.gateway_url, app_key) as app:
            created = await app.create_session(subject_ref="user-metrics", intent="sign:m")
            sid = created["session_id"]
            ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
            capture = CaptureMetadata(
                challenge_nonce=created["challenge_nonce"], scenario="borderline"
            )
            await app.submit(sid, [ref], capture)
            await app.wait_for(sid, {Stage.awaiting_review}, timeout_s=30)

        for _ in range(50):  # visibility is eventually consistent: bounded wait
            after = (await http.get("/metrics")).text
            if _metric(after, "signgate_review_queue_depth") >= 1:
                break
            await asyncio.sleep(0.1)
    rejections = "signgate_webhook_rejections_total"
    assert _metric(after, rejections, reason="webhook_signature_invalid") == (
        _metric(before, rejections, reason="webhook_signature_invalid") + 1
    )
    assert _metric(after, "signgate_review_queue_depth") >= 1
    assert _metric(after, "signgate_review_queue_oldest_age_seconds") > 0
