"""The demo as `make demo` runs it: the embedded stack with the built-in `local`
detectors judging the demo captures' pixels (no sandbox outcome involved), and a second
run on the same data flagged as a replay, which is why each demo run gets its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cli.demo import DemoReport, run_demo
from cli.demo_run import demo_settings
from signgate.client import GatewayClient
from signgate.detectors.cache import ResultCache
from signgate.ledger import SqliteLedger
from signgate.settings import Settings
from tests.support import free_port
from workers.stack import embedded_stack


def local_demo_settings(root: Path) -> Settings:
    base = Settings(
        var_dir=root,
        temporal_address=f"127.0.0.1:{free_port()}",
        gateway_port=free_port(),
        sandbox_port=free_port(),
    )
    return demo_settings(base, environ={})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def local_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Settings, DemoReport, DemoReport]]:
    settings = local_demo_settings(tmp_path_factory.mktemp("demo-local"))
    assert settings.check_provider == "local"
    async with embedded_stack(settings, ui=False):
        first = await run_demo(settings)
        again = await run_demo(settings)  # the same captures, on the same data
        yield settings, first, again


async def test_local_detectors_reach_the_demo_outcomes(
    local_runs: tuple[Settings, DemoReport, DemoReport],
) -> None:
    settings, first, _ = local_runs
    outcomes = {s.scenario: (s.action, s.attestation_valid, s.reviewed_by) for s in first.sessions}
    assert outcomes == {
        "bona_fide": ("accept", True, None),
        "deepfake": ("reject", False, None),
        "borderline": ("accept", True, "rev-alice"),
    }
    assert first.audit_verified
    ledger = SqliteLedger(settings.ledger_path, None)
    reasons = {}
    for session in first.sessions:
        entries = ledger.entries(session.session_id)
        checks = next(e for e in entries if e.entry_type == "checks_completed").body["checks"]
        assert {c["provider"] for c in checks} == {"local"}, "not judged by the local detectors"
        liveness = next(c for c in checks if c["kind"] == "liveness")
        assert any(line.startswith("challenge met: ") for line in liveness["explanations"])
        decision = next(e for e in entries if e.entry_type == "decision").body
        reasons[session.scenario] = decision["decision"]["reasons"]
    assert "synthetic_media_high_confidence" in reasons["deepfake"]
    # every local result of the run was kept in the result cache under the data dir
    assert ResultCache(settings.var_dir / "detector-cache.sqlite3").count() >= 3 * 5
    assert "no_device_signals" in reasons["borderline"]


async def test_a_second_run_on_the_same_data_is_flagged_as_a_replay(
    local_runs: tuple[Settings, DemoReport, DemoReport],
) -> None:
    settings, _, again = local_runs
    assert {s.action for s in again.sessions} == {"reject"}
    async with GatewayClient(settings.gateway_url, settings.api_key_for("ops")) as ops:
        for session in again.sessions:
            status = await ops.status(session.session_id)
            assert status.decision is not None
            assert "replayed_capture" in status.decision.reasons


def test_each_demo_run_gets_a_fresh_data_dir_and_local_checks(tmp_path: Path) -> None:
    base = Settings(var_dir=tmp_path)
    one, two = demo_settings(base, environ={}), demo_settings(base, environ={})
    assert one.var_dir != two.var_dir
    assert one.var_dir.parent == two.var_dir.parent == tmp_path / "demo"
    assert one.check_provider == "local"
    chosen = demo_settings(base, environ={"SIGNGATE_CHECK_PROVIDER": "vendor"})
    assert chosen.check_provider == base.check_provider == "vendor"
