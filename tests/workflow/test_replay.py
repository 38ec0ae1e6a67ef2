"""Saved histories replay cleanly against today's workflow code.

A failure here means a workflow change would break sessions already in flight: guard
the change with `workflow.patched`, or (for an intended break) re-record the histories
with SIGNGATE_RECORD_HISTORIES=1 and say so in the commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support import HISTORIES_DIR, payload_codec_for_tests
from workers.client import data_converter
from workflows.onboarding import OnboardingWorkflow

# One history per path through the saga.
REQUIRED = {
    "accept_bona_fide",
    "reject_deepfake",
    "review_approved_borderline",
    "review_rejected_borderline",
    "review_timeout_borderline",
    "vendor_timeout_then_review_timeout",
    "step_up_then_accept",
    "expired_no_capture",
    "shadow_deepfake_unlocked",
    "reviewer_step_up_then_accept",
    "accept_local_steps",
    "accept_baseline",
    "reviewer_step_up_pending_baseline",
}
# Our converter: encrypted histories (recorded with the test key) decrypt, and the older
# plaintext ones pass through the codec untouched.
CONVERTER = data_converter(payload_codec_for_tests())
HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))


def test_golden_histories_cover_every_path() -> None:
    assert REQUIRED <= {p.stem for p in HISTORY_FILES}


@pytest.mark.parametrize("path", HISTORY_FILES, ids=lambda p: p.stem)
async def test_saved_history_replays_against_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"onboarding-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[OnboardingWorkflow], data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def test_a_changed_workflow_is_caught_by_replay(tmp_path: Path) -> None:
    """The replay test can fail: a history whose commands no longer match is reported."""
    path = HISTORIES_DIR / "accept_bona_fide.json"
    tampered = path.read_text().replace('"name": "decide"', '"name": "decide_v0"')
    assert tampered != path.read_text()
    history = WorkflowHistory.from_json("onboarding-tampered", tampered)
    replayer = Replayer(workflows=[OnboardingWorkflow], data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


def test_ops_replay_exits_non_zero_naming_sessions_a_changed_workflow_would_break(
    tmp_path: Path,
) -> None:
    """`signgate ops replay --from` against a deliberately changed workflow module."""
    import subprocess
    import sys

    script = (
        "import workers.history as h\n"
        "from tests.workflow.changed_workflow import ChangedOnboardingWorkflow\n"
        "h.OnboardingWorkflow = ChangedOnboardingWorkflow\n"
        "from cli.ops import ops_app\n"
        f"ops_app(['replay', '--from', {str(HISTORIES_DIR)!r}])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED" in run.stdout and "accept_bona_fide" in run.stdout
    # Histories that never reach the policy still replay: only affected sessions are named.
    assert "ok      expired_no_capture" in run.stdout

    unchanged = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from cli.ops import ops_app\nops_app(['replay', '--from', {str(HISTORIES_DIR)!r}])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
