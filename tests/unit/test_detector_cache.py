"""Local detector results are reused for the same evidence and detector version, and
only then. The counting detector wraps the real device rules; it only counts calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from signgate.detectors import local_provider
from signgate.detectors.base import Evidence
from signgate.detectors.cache import ResultCache
from signgate.detectors.device import check_device
from signgate.evidence import LocalEvidenceStore
from signgate.models import (
    ArtifactKind,
    CaptureMetadata,
    CheckKind,
    CheckRequest,
    CheckResult,
    CheckStatus,
)

MODEL_VERSION = "counting-device/1"
CALLS: list[str] = []


def counting_device(evidence: Evidence) -> CheckResult:
    CALLS.append(evidence.session_id)
    return check_device(evidence)


def exploding_device(evidence: Evidence) -> CheckResult:
    CALLS.append(evidence.session_id)
    raise RuntimeError("a detector bug")


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "evidence")


@pytest.fixture(autouse=True)
def counting(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()
    monkeypatch.setitem(local_provider.DETECTORS, CheckKind.device, (__name__, "counting_device"))


def request(store: LocalEvidenceStore, selfie: bytes, session: str = "s1", **signals: object):
    ref = store.put_bytes(ArtifactKind.selfie, selfie, content_type="image/jpeg")
    return CheckRequest(
        session_id=session,
        tenant_id="demo",
        round=1,
        kind=CheckKind.device,
        artifacts=[ref],
        capture=CaptureMetadata(challenge_nonce="n", device_signals=signals),
        merkle_root="0" * 64,
    )


def provider(store: LocalEvidenceStore, tmp_path: Path) -> local_provider.LocalProvider:
    return local_provider.LocalProvider(store, ResultCache(tmp_path / "var" / "cache.sqlite3"))


def test_a_repeated_check_is_not_recomputed_even_by_a_new_worker(
    store: LocalEvidenceStore, tmp_path: Path
) -> None:
    req = request(store, b"selfie-1", webdriver=True)
    first = provider(store, tmp_path).run(req).result
    again = provider(store, tmp_path).run(req).result  # a fresh provider: the SQLite file
    assert CALLS == ["s1"]
    assert first is not None and again is not None
    assert (again.risk_score, again.attack_hints) == (first.risk_score, first.attack_hints)
    assert first.attack_hints == ["automation"]
    assert again.explanations[:-1] == first.explanations
    assert again.explanations[-1].startswith("result reused")


def test_the_same_media_in_a_new_round_is_reused(store: LocalEvidenceStore, tmp_path: Path) -> None:
    local = provider(store, tmp_path)
    req = request(store, b"selfie-1", webdriver=True)
    local.run(req)
    next_round = req.model_copy(
        update={"round": 2, "capture": req.capture.model_copy(update={"challenge_nonce": "m"})}
    )
    assert local.run(next_round).result is not None
    assert CALLS == ["s1"]


def test_other_evidence_or_capture_is_computed_afresh(
    store: LocalEvidenceStore, tmp_path: Path
) -> None:
    local = provider(store, tmp_path)
    local.run(request(store, b"selfie-1", webdriver=True))
    local.run(request(store, b"selfie-2", webdriver=True))
    other = local.run(request(store, b"selfie-1", webdriver=False)).result
    assert len(CALLS) == 3
    assert other is not None and other.attack_hints == []


def test_a_new_detector_version_is_computed_afresh(
    store: LocalEvidenceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    req = request(store, b"selfie-1")
    provider(store, tmp_path).run(req)
    monkeypatch.setitem(globals(), "MODEL_VERSION", "counting-device/2")
    provider(store, tmp_path).run(req)
    assert len(CALLS) == 2


def test_errors_are_never_cached(
    store: LocalEvidenceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(local_provider.DETECTORS, CheckKind.device, (__name__, "exploding_device"))
    local = provider(store, tmp_path)
    req = request(store, b"selfie-1")
    outcomes = [local.run(req).result, local.run(req).result]
    assert len(CALLS) == 2
    assert all(o is not None and o.status is CheckStatus.error for o in outcomes)
    assert ResultCache(tmp_path / "var" / "cache.sqlite3").count() == 0
