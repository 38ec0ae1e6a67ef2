"""Hostile and malformed input over real HTTP: each gets a 4xx with its reason code,
nothing is stored or signalled, and the gateway still answers /healthz afterwards.

(Missing, invalid and revoked keys are in the role matrix; oversize uploads, declared and
chunked, in test_sessions_api.)
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from signgate.models import ArtifactKind
from signgate.sample_media import box, mp4_bytes
from tests.gateway.conftest import GatewayStack
from tests.support import jpeg_bytes

SELFIE, VIDEO, SIGNALS = (
    ArtifactKind.selfie,
    ArtifactKind.liveness_video,
    ArtifactKind.device_signals,
)


def png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def webp_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="WEBP")
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A few hundred bytes whose header declares 900 megapixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def corrupt_png() -> bytes:
    data = bytearray(png_bytes())
    data[data.find(b"IDAT") + 8] ^= 0xFF  # the compressed stream no longer inflates
    return bytes(data)


def ebml(doc_type: bytes) -> bytes:
    header = b"\x42\x82" + bytes([0x80 | len(doc_type)]) + doc_type
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header


def webm_bytes(doc_type: bytes = b"webm") -> bytes:
    # EBML header, then a Segment of unknown size (as live recorders write it).
    return ebml(doc_type) + b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + b"x" * 64


UPLOADS: list[tuple[str, ArtifactKind, bytes, str, int, str | None]] = [
    # (case, kind, bytes, declared content type, status, reason)
    ("jpeg selfie", SELFIE, jpeg_bytes("ok"), "image/jpeg", 201, None),
    ("png selfie", SELFIE, png_bytes(), "image/png", 201, None),
    ("webp selfie", SELFIE, webp_bytes(), "image/webp", 201, None),
    ("undeclared jpeg", SELFIE, jpeg_bytes("ok2"), "application/octet-stream", 201, None),
    ("mp4 video", VIDEO, mp4_bytes("ok"), "video/mp4", 201, None),
    ("webm video", VIDEO, webm_bytes(), "video/webm", 201, None),
    ("json signals", SIGNALS, b'{"tz": "UTC", "touch": true}', "application/json", 201, None),
    ("png sent as jpeg", SELFIE, png_bytes(), "image/jpeg", 415, "content_type_mismatch"),
    ("gif selfie", SELFIE, b"GIF89a" + b"\x00" * 64, "image/gif", 415, "content_type_mismatch"),
    ("text selfie", SELFIE, b"hello, this is not a picture", "image/jpeg", 415,
     "content_type_mismatch"),
    ("jpeg as video", VIDEO, jpeg_bytes("v"), "video/mp4", 415, "content_type_mismatch"),
    ("html signals", SIGNALS, b"<html><script>x</script></html>", "application/json", 415,
     "content_type_mismatch"),
    ("truncated jpeg", SELFIE, jpeg_bytes("t")[:400], "image/jpeg", 422, "image_corrupt"),
    ("corrupt png", SELFIE, corrupt_png(), "image/png", 422, "image_corrupt"),
    ("png bomb", SELFIE, png_bomb(), "image/png", 413, "decompression_bomb"),
    ("truncated mp4", VIDEO, mp4_bytes("t")[:-100], "video/mp4", 422, "video_truncated"),
    ("mp4 without a movie", VIDEO, box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"mdat", b"x"),
     "video/mp4", 422, "video_corrupt"),
    ("mp4 with a garbage box", VIDEO, box(b"ftyp", b"isom\x00\x00\x02\x00") + b"\xff" * 64,
     "video/mp4", 422, "video_corrupt"),
    ("matroska, not webm", VIDEO, webm_bytes(b"matroska"), "video/webm", 422, "video_corrupt"),
    ("broken json", SIGNALS, b'{"tz": "UTC", ', "application/json", 422, "json_invalid"),
    ("oversize signals", SIGNALS, b"[" + b"1," * 2048 + b"1]", "application/json", 413,
     "evidence_too_large"),
    ("empty selfie", SELFIE, b"", "image/jpeg", 422, "evidence_empty"),
]  # fmt: skip


def stored_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sid(gw: GatewayStack) -> AsyncIterator[str]:
    created = await gw.create_session()
    yield str(created["session_id"])


async def assert_nothing_happened(
    gw: GatewayStack, sid: str, before: set[Path], stage: object
) -> None:
    assert stored_files(gw.settings.evidence_dir) == before
    status = await gw.status(sid)
    assert (status.stage, status.round) == stage


@pytest.mark.parametrize(
    ("kind", "data", "content_type", "want_status", "want_reason"),
    [case[1:] for case in UPLOADS],
    ids=[case[0] for case in UPLOADS],
)
async def test_upload_is_sniffed_and_checked(
    gw: GatewayStack,
    sid: str,
    kind: ArtifactKind,
    data: bytes,
    content_type: str,
    want_status: int,
    want_reason: str | None,
) -> None:
    before = stored_files(gw.settings.evidence_dir)
    status = await gw.status(sid)
    async with gw.http() as http:
        response = await http.put(
            f"/v1/sessions/{sid}/evidence/{kind.value}",
            content=data,
            headers={
                "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
                "Content-Type": content_type,
            },
        )
    assert response.status_code == want_status, response.text
    if want_reason is None:
        assert gw.deps.store.exists(response.json()["object_key"])
        sniffed = response.json()["content_type"]
        assert sniffed == content_type or content_type == "application/octet-stream"
        assert sniffed != "application/octet-stream"
        return
    assert response.json()["error"]["reason"] == want_reason
    await assert_nothing_happened(gw, sid, before, (status.stage, status.round))


UNICODE_IDS = {
    "rtl override": "abc\u202edefgh12",
    "nul": "abcdefgh\x0012",
    "cyrillic a": "\u0430bcdefgh12",
    "zero width": "abcd\u200befgh12",
}


@pytest.mark.parametrize("session_id", UNICODE_IDS.values(), ids=UNICODE_IDS.keys())
async def test_unicode_tricks_in_ids_are_refused(gw: GatewayStack, session_id: str) -> None:
    before = stored_files(gw.settings.evidence_dir)
    async with gw.http() as http:
        in_body = await http.post(
            "/v1/sessions", json={"session_id": session_id, "subject_ref": "u-1", "intent": "i"}
        )
        as_subject = await http.post(
            "/v1/sessions", json={"subject_ref": session_id, "intent": "sign:nda"}
        )
        in_path = await http.get(f"/v1/sessions/{quote(session_id)}")
    for response in (in_body, as_subject):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["reason"] == "request_invalid"
        assert session_id not in response.text  # the input is never echoed back
    assert 400 <= in_path.status_code < 500
    assert in_path.json()["error"]["reason"] in ("request_invalid", "not_found")
    assert stored_files(gw.settings.evidence_dir) == before


async def test_hidden_characters_in_intent_are_refused(gw: GatewayStack) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/sessions", json={"subject_ref": "u-1", "intent": "sign:\u202enda"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "request_invalid"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions/{sid}/evidence/..%2F..%2Fetc%2Fpasswd",
        "/v1/sessions/{sid}/evidence/selfie%00.jpg",
        "/v1/sessions/{sid}/evidence/..",
        "/v1/sessions/..%2F{sid}/evidence/selfie",
    ],
)
async def test_path_traversal_in_names_and_kinds_is_refused(
    gw: GatewayStack, sid: str, path: str
) -> None:
    before = stored_files(gw.settings.evidence_dir)
    data = jpeg_bytes("traversal")
    async with gw.http() as http:
        response = await http.put(
            path.format(sid=sid),
            content=data,
            headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
        )
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["reason"] in (
        "request_invalid",
        "not_found",
        "method_not_allowed",
    )
    assert stored_files(gw.settings.evidence_dir) == before
    assert not any(".." in str(p) for p in stored_files(gw.settings.var_dir))


async def test_unknown_policy_name_with_traversal_is_refused(gw: GatewayStack) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/sessions",
            json={"subject_ref": "u-1", "intent": "i", "policy_id": "../../etc/passwd"},
        )
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "unknown_policy"


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_huge_json_body_is_413_before_any_work(gw: GatewayStack, chunked: bool) -> None:
    huge = b'{"subject_ref": "u-1", "intent": "' + b"x" * (512 * 1024) + b'"}'

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    async with gw.http() as http:
        response = await http.post(
            "/v1/sessions",
            content=stream() if chunked else huge,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["reason"] == "request_too_large"


async def test_gateway_still_answers_after_all_of_it(gw: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
