"""The chaos run, small (N=22, every plan once): real dev server, sandbox, gateway and
worker processes; workers SIGKILLed every few seconds and the dev server SIGKILLed and
restarted once, while sessions run. The vendor sandbox is the only test double, and the
driver plays a hostile vendor's webhooks. Every invariant of `chaos.invariants` must hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import PLANS, render, run_chaos


@pytest.mark.timeout(420)
async def test_no_fault_accepts_a_session_or_loses_anything(tmp_path: Path) -> None:
    report = await run_chaos(
        len(PLANS),
        tmp_path / "var",
        seed=11,
        concurrency=len(PLANS),
        deadline_s=200,
        settle_s=60,
    )
    table = render(report)
    print(table)
    assert report.faults["Temporal dev server SIGKILL + restart"] == 1, table
    assert report.faults["worker SIGKILL"] >= 1, table
    assert {r.plan.name for r in report.records} == {p.name for p, _ in PLANS}
    for verdict in report.verdicts:
        assert not verdict.violations, f"{verdict.name}: {verdict.violations}\n{table}"
    # The run did real work: each invariant had something to check.
    assert all(v.checked > 0 for v in report.verdicts), table
    stages = {r.plan.name: r.final.stage.value for r in report.records if r.final}
    assert stages["deepfake"] == "rejected"
    assert stages["webhooks forged"] == "rejected"
