"""The local provider turns any detector failure into `error`, never into a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from signgate.detectors import local_provider
from signgate.detectors.base import Evidence
from signgate.evidence import LocalEvidenceStore
from signgate.models import (
    ArtifactKind,
    CaptureMetadata,
    CheckKind,
    CheckRequest,
    CheckResult,
    CheckStatus,
)


def exploding_detector(evidence: Evidence) -> CheckResult:
    raise ZeroDivisionError("a bug in a detector")


def echo_detector(evidence: Evidence) -> CheckResult:
    data = evidence.media[ArtifactKind.selfie]
    return CheckResult(
        kind=CheckKind.device,
        status=CheckStatus.completed,
        provider="local",
        risk_score=0.1,
        explanations=[f"{len(data)} bytes, sha {evidence.sha256[ArtifactKind.selfie][:8]}"],
    )


def request_for(store: LocalEvidenceStore, kind: CheckKind, data: bytes) -> CheckRequest:
    ref = store.put_bytes(ArtifactKind.selfie, data, content_type="image/jpeg")
    return CheckRequest(
        session_id="s-local-1",
        tenant_id="demo",
        round=1,
        kind=kind,
        artifacts=[ref],
        capture=CaptureMetadata(challenge_nonce="n"),
        merkle_root="0" * 64,
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "evidence")


def test_a_crashing_detector_yields_error_not_a_pass(
    store: LocalEvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        local_provider.DETECTORS, CheckKind.device, (__name__, "exploding_detector")
    )
    outcome = local_provider.LocalProvider(store).run(request_for(store, CheckKind.device, b"x"))
    assert outcome.state == "completed" and outcome.result is not None
    assert outcome.result.status is CheckStatus.error
    assert outcome.result.reason == "detector_failed"
    assert outcome.result.risk_score is None


def test_the_detector_sees_the_stored_bytes_and_latency_is_measured(
    store: LocalEvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(local_provider.DETECTORS, CheckKind.device, (__name__, "echo_detector"))
    outcome = local_provider.LocalProvider(store).run(
        request_for(store, CheckKind.device, b"12345")
    )
    assert outcome.result is not None
    assert outcome.result.explanations[0].startswith("5 bytes, sha 5994471a")
    assert outcome.result.latency_ms >= 0


def test_every_check_kind_has_a_local_detector() -> None:
    assert set(local_provider.DETECTORS) == set(CheckKind)


def test_a_detector_reads_only_the_artifacts_it_asks_for(
    store: LocalEvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(local_provider.DETECTORS, CheckKind.device, (__name__, "echo_detector"))
    request = request_for(store, CheckKind.device, b"12345")
    video = store.put_bytes(ArtifactKind.liveness_video, b"v" * 4096, content_type="video/mp4")
    request = request.model_copy(update={"artifacts": [*request.artifacts, video]})
    # The video is gone from disk: only an eager read would notice.
    (store.root / "objects" / video.object_key).unlink()

    outcome = local_provider.LocalProvider(store).run(request)
    assert outcome.result is not None and outcome.result.status is CheckStatus.completed
    assert outcome.result.explanations[0].startswith("5 bytes")
