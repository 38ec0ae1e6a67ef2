"""What every local detector receives and how it names itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from signgate.models import ArtifactKind, ArtifactRef, CaptureMetadata

# Keeps a detector's by-product (e.g. a heatmap PNG) as a write-once evidence object:
# (source artifact kind, bytes, content type) -> its ref (sha256, object key).
KeepArtifact = Callable[[ArtifactKind, bytes, str], ArtifactRef]

PROVIDER = "local"


@dataclass(frozen=True)
class Evidence:
    """One capture round's media, loaded from the evidence store, plus its metadata.

    `media` maps artifact kind to raw bytes (it may read lazily, so a detector pays only
    for the artifacts it looks at); `sha256` the sealed hashes. The liveness
    video may be absent (image-only capture).
    """

    session_id: str
    capture: CaptureMetadata
    media: Mapping[ArtifactKind, bytes]
    sha256: dict[ArtifactKind, str] = field(default_factory=dict)
    session_started_at: datetime | None = None
    motion_challenge: tuple[str, ...] = ()  # the workflow's active-liveness moves, in order
    keep_artifact: KeepArtifact | None = None  # None: by-products are not stored


def model_version(detector: str, detector_version: str, packages: tuple[str, ...] = ()) -> str:
    """`name/version (pkg==ver, ...)`: enough to reproduce a score months later."""
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(f"{package}==missing")
    return f"{detector}/{detector_version}" + (f" ({', '.join(pins)})" if pins else "")
