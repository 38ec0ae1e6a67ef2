"""The forensics heatmap is kept as a write-once evidence object and referenced from the
deepfake result by hash and key, never carried inline."""

from __future__ import annotations

import hashlib
import io
import re
import stat
from pathlib import Path

from PIL import Image
from skimage import data

from signgate.attacks import jpeg_bytes
from signgate.detectors.local_provider import LocalProvider
from signgate.evidence import LocalEvidenceStore
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckRequest

HEATMAP_LINE = re.compile(
    r"^(selfie|id_front): region heatmap PNG kept as evidence "
    r"sha256=([0-9a-f]{64}) object_key=(sha256/[0-9a-f]{2}/[0-9a-f]{64})$"
)


def deepfake_request(store: LocalEvidenceStore) -> CheckRequest:
    selfie = store.put_bytes(ArtifactKind.selfie, jpeg_bytes(data.astronaut(), 90), "image/jpeg")
    return CheckRequest(
        session_id="s-heatmap",
        tenant_id="demo",
        round=1,
        kind=CheckKind.deepfake,
        artifacts=[selfie],
        capture=CaptureMetadata(challenge_nonce="n"),
        merkle_root="0" * 64,
    )


def test_the_heatmap_png_is_stored_write_once_and_referenced_by_hash(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path / "evidence")
    request = deepfake_request(store)
    result = LocalProvider(store).run(request).result
    assert result is not None
    refs = [m for line in result.explanations if (m := HEATMAP_LINE.match(line))]
    assert [m.group(1) for m in refs] == ["selfie"]
    _, sha256, key = refs[0].groups()
    with store.open(key) as stored:
        png = stored.read()
    assert hashlib.sha256(png).hexdigest() == sha256
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert Image.open(io.BytesIO(png)).size == (256, 256)
    path = store.root / "objects" / key
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # the result carries the reference only: nothing like image bytes travels in it
    assert len(result.model_dump_json()) < 4000

    again = LocalProvider(store).run(request).result
    assert again is not None
    assert [m.group(2) for line in again.explanations if (m := HEATMAP_LINE.match(line))] == [
        sha256
    ]
