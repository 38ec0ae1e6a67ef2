"""The `local` provider: runs the built-in detector for a check kind on the stored media.

Detectors are CPU-bound and synchronous; the activity calls `run` in a thread. Each
detector module is imported on first use, so a worker that never runs face matching
never loads dlib's models.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from signgate.detectors.base import PROVIDER, Evidence
from signgate.evidence import LocalEvidenceStore
from signgate.models import (
    ArtifactKind,
    CheckKind,
    CheckOutcome,
    CheckRequest,
    CheckResult,
    CheckStatus,
)

# check kind -> (module, function) of the detector that answers it
DETECTORS: dict[CheckKind, tuple[str, str]] = {
    CheckKind.liveness: ("signgate.detectors.liveness", "check_liveness"),
    CheckKind.deepfake: ("signgate.detectors.forensics", "check_deepfake"),
    CheckKind.face_match: ("signgate.detectors.face_match", "check_face_match"),
    CheckKind.device: ("signgate.detectors.device", "check_device"),
    CheckKind.provenance: ("signgate.detectors.provenance", "check_provenance"),
}


def detector_for(kind: CheckKind) -> Callable[[Evidence], CheckResult]:
    module, function = DETECTORS[kind]
    detector: Callable[[Evidence], CheckResult] = getattr(importlib.import_module(module), function)
    return detector


class LocalProvider:
    def __init__(self, store: LocalEvidenceStore) -> None:
        self._store = store

    def load_evidence(self, request: CheckRequest) -> Evidence:
        media: dict[ArtifactKind, bytes] = {}
        hashes: dict[ArtifactKind, str] = {}
        for ref in request.artifacts:
            with self._store.open(ref.object_key) as stream:
                media[ref.kind] = stream.read()
            hashes[ref.kind] = ref.sha256
        return Evidence(
            session_id=request.session_id, capture=request.capture, media=media, sha256=hashes
        )

    def run(self, request: CheckRequest) -> CheckOutcome:
        started = time.perf_counter()
        try:
            result = detector_for(request.kind)(self.load_evidence(request))
        except Exception as err:  # a detector bug must become `error`, never a pass
            result = CheckResult(
                kind=request.kind,
                status=CheckStatus.error,
                provider=PROVIDER,
                reason="detector_failed",
                explanations=[f"{type(err).__name__}: {str(err)[:200]}"],
            )
        latency_ms = int((time.perf_counter() - started) * 1000)
        return CheckOutcome.completed(result.model_copy(update={"latency_ms": latency_ms}))
