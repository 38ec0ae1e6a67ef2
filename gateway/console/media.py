"""Serving one signed media link: a stored still, or one key frame of a liveness video.

The token (verified by the caller) names the session, the content hash and the variant;
because the store is content-addressed, the hash alone finds the exact sealed bytes.
Only images the browser can show are served, typed by their magic bytes, never by what
the uploader claimed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.responses import Response

from gateway.console.frames import FrameCache
from gateway.errors import Refusal
from signgate.evidence import LocalEvidenceStore, object_key_for
from signgate.models import ArtifactKind

IMAGE_KINDS = (ArtifactKind.selfie, ArtifactKind.id_front, ArtifactKind.id_back)
VIDEO_KINDS = (ArtifactKind.liveness_video,)
MAX_STILL_BYTES = 20 * 1024 * 1024

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def image_type(head: bytes) -> str | None:
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def object_path(store: LocalEvidenceStore, object_key: str) -> Path:
    """The stored file (OpenCV reads a path, not a stream)."""
    with store.open(object_key) as handle:
        return Path(handle.name)


def _read_still(store: LocalEvidenceStore, object_key: str) -> bytes:
    with store.open(object_key) as handle:
        data = handle.read(MAX_STILL_BYTES + 1)
    if len(data) > MAX_STILL_BYTES:
        raise Refusal(413, "media_too_large", "this still is too large to show")
    return data


async def media_response(
    store: LocalEvidenceStore, frames: FrameCache, claims: dict[str, Any]
) -> Response:
    sha256, variant = str(claims.get("sha", "")), str(claims.get("v", ""))
    key = object_key_for(sha256)
    if variant == "raw":
        data = await asyncio.to_thread(_read_still, store, key)
    elif variant.startswith("frame:") and variant[6:].isdigit():
        stills = await asyncio.to_thread(frames.get, sha256, object_path(store, key))
        index = int(variant[6:])
        if index >= len(stills):
            raise Refusal(404, "media_not_found", "no such key frame")
        data = stills[index]
    else:
        raise Refusal(404, "media_not_found", "no such media variant")
    media_type = image_type(data[:16])
    if media_type is None:
        raise Refusal(415, "media_not_displayable", "this artifact is not an image")
    return Response(data, media_type=media_type)
