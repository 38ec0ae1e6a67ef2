"""Evidence uploads are what they claim to be, checked while they stream, before they are kept.

`Inspection(kind, declared).stream(chunks)` passes the upload's chunks through to the
evidence store and checks them on the way: the first bytes against the kind's magic
numbers (JPEG/PNG/WebP for images, MP4/WebM for video, JSON for device signals), then at
the end of the stream the whole artifact (an image's header for its pixel count, then a
full decode; a video's container structure; the signals' JSON). A refusal is raised
from inside the stream, so the store discards its temp file and nothing is kept.

Images are decoded under a pixel cap set here on purpose (`Image.MAX_IMAGE_PIXELS`): the
header is read first and a bomb is refused from its declared size without decoding a
pixel. Video is probed, never decoded: MP4 top-level boxes are walked as they stream by
(bounded by a box count), WebM's EBML header is parsed from the first bytes.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import warnings
from collections.abc import AsyncIterable, AsyncIterator

from PIL import Image, UnidentifiedImageError

from gateway.errors import Refusal
from signgate.models import ArtifactKind

# 40 megapixels: above any phone selfie or ID scan we take (12-24 MP typical), and a cap
# on decode memory (~120 MB RGB). Pillow warns above this and refuses above twice it;
# we refuse above it, before decoding.
MAX_IMAGE_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

IMAGE_KINDS = frozenset({ArtifactKind.selfie, ArtifactKind.id_front, ArtifactKind.id_back})
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
VIDEO_TYPES = ("video/mp4", "video/webm")
_SNIFF_BYTES = 16
_MAX_MP4_BOXES = 4096
_MP4_TOP_LEVEL = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"moof",
    b"mfra", b"sidx", b"styp", b"pdin", b"prft", b"emsg",
}  # fmt: skip
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_SEGMENT_ID = b"\x18\x53\x80\x67"


def refuse_type(kind: ArtifactKind, found: str) -> Refusal:
    return Refusal(
        415, "content_type_mismatch", f"{kind.value} must be {expected(kind)}; this is {found}"
    )


def expected(kind: ArtifactKind) -> str:
    if kind in IMAGE_KINDS:
        return "a JPEG, PNG or WebP image"
    if kind is ArtifactKind.liveness_video:
        return "an MP4 or WebM video"
    return "a JSON document"


def sniff(kind: ArtifactKind, head: bytes) -> str:
    """The media type the first bytes show, if it is one `kind` accepts; else 415."""
    if kind in IMAGE_KINDS:
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "image/webp"
    elif kind is ArtifactKind.liveness_video:
        if head[4:8] == b"ftyp":
            return "video/mp4"
        if head.startswith(_EBML_MAGIC):
            return "video/webm"
    elif head.lstrip()[:1] in (b"{", b"["):
        return "application/json"
    raise refuse_type(kind, "something else")


def check_declared(kind: ArtifactKind, declared: str, sniffed: str) -> None:
    """A declared Content-Type must agree with the bytes (octet-stream declares nothing)."""
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type in ("", "application/octet-stream") or media_type == sniffed:
        return
    if media_type == "image/jpg" and sniffed == "image/jpeg":
        return
    raise refuse_type(kind, f"{sniffed} sent as {media_type[:60]!r}")


class Inspection:
    """One upload's check; after the stream, `media_type` is what the bytes showed."""

    def __init__(self, kind: ArtifactKind, declared_type: str) -> None:
        self.kind = kind
        self.declared_type = declared_type
        self.media_type: str | None = None

    async def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, passed through, raising a Refusal as soon as they show a bad artifact."""
        kind = self.kind
        head = b""
        sniffed: str | None = None
        kept = bytearray()  # images and JSON are checked whole at the end; both are capped
        mp4 = _Mp4Walker() if kind is ArtifactKind.liveness_video else None
        async for chunk in chunks:
            if sniffed is None:
                head += chunk
                if len(head) < _SNIFF_BYTES:
                    continue
                sniffed = sniff(kind, head)
                check_declared(kind, self.declared_type, sniffed)
                chunk, head = head, b""
            if kind is not ArtifactKind.liveness_video:
                kept += chunk
            elif mp4 is not None and sniffed == "video/mp4":
                mp4.feed(chunk)
            elif sniffed == "video/webm" and len(kept) < 64 * 1024:
                kept += chunk[: 64 * 1024 - len(kept)]
            yield chunk
        if sniffed is None:  # shorter than the sniff window
            if not head:
                raise Refusal(422, "evidence_empty", f"{kind.value} is empty")
            sniffed = sniff(kind, head)
            check_declared(kind, self.declared_type, sniffed)
            kept += head
            if mp4 is not None:
                mp4.feed(head)
            yield head
        await asyncio.to_thread(_check_whole, kind, sniffed, bytes(kept), mp4)
        self.media_type = sniffed


def _check_whole(kind: ArtifactKind, sniffed: str, data: bytes, mp4: _Mp4Walker | None) -> None:
    if kind in IMAGE_KINDS:
        check_image(kind, data)
    elif sniffed == "video/mp4" and mp4 is not None:
        mp4.finish()
    elif sniffed == "video/webm":
        check_webm(data)
    else:
        check_json(data)


def check_image(kind: ArtifactKind, data: bytes) -> None:
    """Header first (a bomb is refused from its declared size), then a full decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in IMAGE_FORMATS:
                    raise refuse_type(kind, f"a {image.format} image")
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise _bomb(width, height)
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise Refusal(413, "decompression_bomb", f"image refused: {err}") from err
    except UnidentifiedImageError as err:
        raise Refusal(422, "image_corrupt", f"{kind.value} is not a readable image") from err
    except (OSError, SyntaxError, ValueError, struct.error) as err:
        # Pillow reports truncation and corrupt data as OSError/SyntaxError/ValueError.
        raise Refusal(422, "image_corrupt", f"{kind.value} is truncated or corrupt: {err}") from err


def _bomb(width: int, height: int) -> Refusal:
    return Refusal(
        413,
        "decompression_bomb",
        f"image declares {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS}",
    )


def check_json(data: bytes) -> None:
    try:
        json.loads(data)
    except (ValueError, RecursionError) as err:
        raise Refusal(422, "json_invalid", "device_signals is not valid UTF-8 JSON") from err


class _Mp4Walker:
    """Walks MP4 top-level boxes as bytes stream by: sizes must tile the file exactly,
    `ftyp` comes first, `moov` is present, and no more than _MAX_MP4_BOXES boxes."""

    def __init__(self) -> None:
        self.header = bytearray()  # the current box header, as far as it has arrived
        self.skip = 0  # bytes left in the current box's body
        self.boxes: list[bytes] = []
        self.to_end = False  # a size-0 box runs to the end of the file

    def _header_len(self) -> int:
        return 16 if self.header[:4] == b"\x00\x00\x00\x01" else 8

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and not self.to_end:
            if self.skip:
                taken = min(self.skip, len(view))
                self.skip -= taken
                view = view[taken:]
                continue
            want = self._header_len() - len(self.header)
            self.header += view[:want]
            view = view[want:]
            if len(self.header) == self._header_len():
                self._box()

    def _box(self) -> None:
        size, box_type = struct.unpack(">I4s", self.header[:8])
        header_len = len(self.header)
        if size == 1:
            size = struct.unpack(">Q", self.header[8:16])[0]
        self.header = bytearray()
        if not self.boxes and box_type != b"ftyp":
            raise _video_corrupt("does not start with an ftyp box")
        if box_type not in _MP4_TOP_LEVEL:
            raise _video_corrupt(f"unexpected top-level box {box_type!r}")
        self.boxes.append(box_type)
        if len(self.boxes) > _MAX_MP4_BOXES:
            raise _video_corrupt("too many boxes")
        if size == 0:
            self.to_end = True
        elif size < header_len:
            raise _video_corrupt("box size below its header")
        else:
            self.skip = size - header_len

    def finish(self) -> None:
        if self.skip or self.header:
            raise Refusal(422, "video_truncated", "liveness_video ends inside an MP4 box")
        if b"moov" not in self.boxes:
            raise _video_corrupt("has no moov box (no playable movie)")


def check_webm(head: bytes) -> None:
    """The EBML header names DocType webm, and a Segment follows it."""
    try:
        size, pos = _vint(head, 4)
        header_end = pos + size
        body = head[pos:header_end]
        if len(body) < size:
            raise ValueError("EBML header truncated")
        if b"\x42\x82\x84webm" not in body and b"\x42\x82\x84WEBM" not in body:
            raise ValueError("DocType is not webm")
        if head[header_end : header_end + 4] != _SEGMENT_ID:
            raise ValueError("no Segment after the EBML header")
    except (ValueError, IndexError) as err:
        raise _video_corrupt(str(err)) from err


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """An EBML variable-length size at `pos`: (value, position after it)."""
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if length > 8:
        raise ValueError("invalid EBML size")
    value = first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if pos + length > len(data):
        raise ValueError("EBML size truncated")
    return value, pos + length


def _video_corrupt(why: str) -> Refusal:
    return Refusal(422, "video_corrupt", f"liveness_video is not a valid container: {why}")
