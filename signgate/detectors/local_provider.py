"""The `local` provider: runs the built-in detector for a check kind on the stored media.

Detectors are CPU-bound and synchronous; the activity calls `run` in a thread. Each
detector module is imported on first use, so a worker that never runs face matching
never loads dlib's models. With a `ResultCache`, a completed result is reused for the same
evidence, capture metadata and detector version (`signgate.detectors.cache`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from signgate.detectors.base import PROVIDER, Evidence
from signgate.detectors.cache import ResultCache, cache_key
from signgate.evidence import EvidenceStore
from signgate.models import (
    ArtifactKind,
    ArtifactRef,
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


class StoredMedia(Mapping[ArtifactKind, bytes]):
    """The round's artifacts, read from the store on first access and kept.

    Each of the five checks gets its own; a liveness video of up to 200 MB is read only
    by a detector that asks for it, not five times per round.
    """

    def __init__(self, store: EvidenceStore, artifacts: Sequence[ArtifactRef]) -> None:
        self._store = store
        self._refs = {ref.kind: ref for ref in artifacts}
        self._loaded: dict[ArtifactKind, bytes] = {}

    def __getitem__(self, kind: ArtifactKind) -> bytes:
        if kind not in self._loaded:
            with self._store.open(self._refs[kind].object_key) as stream:
                self._loaded[kind] = stream.read()
        return self._loaded[kind]

    def __iter__(self) -> Iterator[ArtifactKind]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


def detector_version(kind: CheckKind) -> str:
    """The `MODEL_VERSION` of the module answering `kind` (name, version, package pins)."""
    version: str = importlib.import_module(DETECTORS[kind][0]).MODEL_VERSION
    return version


class LocalProvider:
    def __init__(self, store: EvidenceStore, cache: ResultCache | None = None) -> None:
        self._store = store
        self._cache = cache

    def load_evidence(self, request: CheckRequest) -> Evidence:
        return Evidence(
            session_id=request.session_id,
            capture=request.capture,
            media=StoredMedia(self._store, request.artifacts),
            sha256={ref.kind: ref.sha256 for ref in request.artifacts},
            motion_challenge=tuple(request.motion_challenge),
            keep_artifact=self._keep,
        )

    def _keep(self, source: ArtifactKind, data: bytes, content_type: str) -> ArtifactRef:
        """A detector by-product, in the same write-once content-addressed store as the
        evidence; its ref's kind names the artifact it was computed from."""
        return self._store.put_bytes(source, data, content_type=content_type)

    def run(self, request: CheckRequest) -> CheckOutcome:
        started = time.perf_counter()
        key = None
        if self._cache is not None:
            key = cache_key(request, detector_version(request.kind))
            cached = self._cache.get(key)
            if cached is not None:
                note = "result reused: same evidence sha256, capture and detector version"
                return CheckOutcome.completed(
                    cached.model_copy(
                        update={
                            "latency_ms": int((time.perf_counter() - started) * 1000),
                            "explanations": [*cached.explanations, note],
                        }
                    )
                )
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
        result = result.model_copy(update={"latency_ms": latency_ms})
        if self._cache is not None and key is not None:
            self._cache.put(key, result)
        return CheckOutcome.completed(result)
