"""Serving one signed media link: a stored still, or one key frame of a liveness video.

The token (verified by the caller) names the session, the content hash and the variant;
the object key (signed into the token with the hash) finds the exact sealed bytes.
Only images the browser can show are served, typed by their magic bytes, never by what
the uploader claimed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi.responses import Response

from gateway.console.frames import FrameCache, key_frames
from gateway.errors import Refusal
from signgate.evidence import EvidenceStore, parse_object_key
from signgate.hashing import sha256_hex
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


def video_frames(store: EvidenceStore, frames: FrameCache, object_key: str) -> list[bytes]:
    """Key frames of one stored video, so that an erased session's frames are never shown.

    A miss opens (decrypts) the video, and the store refuses an erased or missing one. A
    hit is served only after a cheap check that the store would still give the video
    out; when it would not, the cached frames are dropped and the store is asked, so the
    refusal is the store's own (`evidence_erased`, `evidence_missing`).
    """
    return frames.get(
        object_key,
        extract=lambda: _frames_of(store, object_key),
        usable=lambda: _still_readable(store, object_key),
    )


def _still_readable(store: EvidenceStore, object_key: str) -> bool:
    """The session's key not destroyed (a tombstone lookup) and the object still stored
    (a file check, or a HEAD on S3): no read, no decryption."""
    session_id, _ = parse_object_key(object_key)
    if session_id is not None and (
        store.data_keys is None or store.data_keys.is_erased(session_id)
    ):
        return False
    return store.exists(object_key)


def _frames_of(store: EvidenceStore, object_key: str) -> list[bytes]:
    # OpenCV reads a path, not a stream: the plaintext goes to a private temporary file.
    with store.open(object_key) as stream, tempfile.NamedTemporaryFile(suffix=".video") as plain:
        shutil.copyfileobj(stream, plain)
        plain.flush()
        return key_frames(Path(plain.name))


def _read_still(store: EvidenceStore, object_key: str) -> bytes:
    with store.open(object_key) as handle:
        data = handle.read(MAX_STILL_BYTES + 1)
    if len(data) > MAX_STILL_BYTES:
        raise Refusal(413, "media_too_large", "this still is too large to show")
    return data


async def media_response(
    store: EvidenceStore, frames: FrameCache, claims: dict[str, Any]
) -> Response:
    key, variant = str(claims.get("key", "")), str(claims.get("v", ""))
    if variant == "raw":
        data = await asyncio.to_thread(_read_still, store, key)
    elif variant == "heatmap":
        # Named by a check's explanation (see heatmaps.py): serve it only as the very bytes
        # that were named, and only as a PNG.
        data = await asyncio.to_thread(_read_still, store, key)
        if sha256_hex(data) != claims.get("sha"):
            raise Refusal(409, "evidence_hash_mismatch", "the stored heatmap is not the one named")
        if image_type(data[:16]) != "image/png":
            raise Refusal(415, "media_not_displayable", "this heatmap is not a PNG")
    elif variant.startswith("frame:") and variant[6:].isdigit():
        stills = await asyncio.to_thread(video_frames, store, frames, key)
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
