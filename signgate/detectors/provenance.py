"""The `local` provenance check: what an image's own metadata says about where it came from.

Two sources, read offline from the bytes only:
- C2PA Content Credentials: absent / invalid / valid / trusted, and the declared
  `digitalSourceType` (a generator that signs "trainedAlgorithmicMedia" told us itself).
  Remote manifest fetching and OCSP are off: a check must never reach the network.
- EXIF / XMP / PNG text chunks: generator and editor markers, a camera claim without a
  camera, a capture date far from the session, an EXIF thumbnail of another picture.

Absence is not evidence: most phone captures carry no C2PA today and apps often strip
EXIF, so a missing manifest adds no risk and stripped EXIF only counts when the capturing
app claims a camera. Nothing here raises on bad input: an undecodable image or a corrupt
manifest becomes an explanation.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import c2pa
import exifread
import numpy as np
import piexif
from cryptography import x509
from PIL import Image, UnidentifiedImageError

from signgate.detectors.base import PROVIDER, Evidence, model_version
from signgate.models import ArtifactKind, CheckKind, CheckResult, CheckStatus

MODEL_VERSION = model_version("provenance", "1", ("c2pa-python", "piexif", "ExifRead"))

IMAGE_ARTIFACTS = (ArtifactKind.selfie, ArtifactKind.id_front, ArtifactKind.id_back)
MAX_CAPTURE_AGE = timedelta(hours=24)
# A DateTimeOriginal without an offset is local time: allow the widest UTC offset.
NAIVE_CLOCK_SLACK = timedelta(hours=14)
AWARE_CLOCK_SLACK = timedelta(minutes=15)
THUMBNAIL_MAX_MEAN_DIFF = 0.15  # mean |a-b| of 32x32 grey images, 0..1

AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
GENERATORS = (
    "stable diffusion",
    "stablediffusion",
    "automatic1111",
    "midjourney",
    "dall-e",
    "dall·e",
    "dalle",
    "firefly",
    "comfyui",
    "invokeai",
    "novelai",
    "imagen",
    "leonardo.ai",
)
EDITORS = (
    "photoshop",
    "gimp",
    "snapseed",
    "lightroom",
    "affinity photo",
    "pixelmator",
    "facetune",
    "faceapp",
    "picsart",
    "paint.net",
    "canva",
)
# PNG text chunks written by generator front-ends (A1111, ComfyUI, InvokeAI, NovelAI).
GENERATOR_PNG_KEYS = ("parameters", "prompt", "workflow", "sd-metadata", "invokeai_metadata")
C2PA_READ_SETTINGS: dict[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": False},
    "core": {"allowed_network_hosts": []},
}
MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}


@dataclass(frozen=True)
class Signal:
    """One observation: an optional attack hint, its risk and how sure we are of it."""

    explanation: str
    hint: str | None = None
    risk: float = 0.0
    confidence: float = 0.0


def check_provenance(evidence: Evidence, trust_anchors_pem: str | None = None) -> CheckResult:
    """Score the image artifacts' provenance. `trust_anchors_pem` makes a C2PA signer
    chaining to one of these roots `trusted` (otherwise the best state is `valid`)."""
    started = time.perf_counter()
    signals: list[Signal] = []
    if trust_anchors_pem and not _parses_as_certificates(trust_anchors_pem):
        # Our misconfiguration must not read as the applicant's tampering.
        signals.append(
            Signal("configured C2PA trust anchors are not PEM certificates; trust not checked")
        )
        trust_anchors_pem = None
    images = {kind: evidence.media[kind] for kind in IMAGE_ARTIFACTS if kind in evidence.media}
    for kind, data in images.items():
        for signal in _image_signals(data, evidence, trust_anchors_pem):
            signals.append(replace(signal, explanation=f"{kind}: {signal.explanation}"))
    if not images:
        signals.append(Signal("no image artifact to examine"))
    flagged = [s for s in signals if s.hint]
    hints = sorted({s.hint for s in flagged if s.hint})
    risk = max((s.risk for s in signals), default=0.0)
    if flagged:
        confidence = max(s.confidence for s in flagged)
    else:
        # Clean metadata is weak evidence of a genuine capture: metadata is easy to forge.
        confidence = 0.3 if images else 0.0
    return CheckResult(
        kind=CheckKind.provenance,
        status=CheckStatus.completed,
        risk_score=round(risk, 3),
        confidence=round(confidence, 3),
        attack_hints=hints,
        provider=PROVIDER,
        model_version=MODEL_VERSION,
        latency_ms=int((time.perf_counter() - started) * 1000),
        explanations=[s.explanation for s in signals],
    )


def _image_signals(data: bytes, evidence: Evidence, anchors: str | None) -> Iterator[Signal]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Pixels serve only the 32x32 thumbnail comparison (and prove the image
            # decodes): a JPEG is decoded straight to grey at the smallest DCT scale
            # (1/2..1/8) that keeps 64 px a side. libjpeg still reads every coefficient;
            # a 1080p image costs a third of a full decode.
            image.draft("L", (64, 64))
            image.load()
            fmt = image.format or ""
            png_text = {str(k): str(v) for k, v in image.info.items() if isinstance(v, str)}
            pixels = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        yield Signal(f"image could not be decoded ({type(exc).__name__}); provenance unknown")
        return
    yield from _c2pa_signals(data, MIME_BY_FORMAT.get(fmt), anchors)
    exif = _read_exif(data)
    yield from _marker_signals(exif, png_text, _xmp_text(data))
    yield from _camera_signals(exif, evidence)
    yield from _date_signals(exif, evidence)
    yield from _thumbnail_signals(exif, pixels)


def _parses_as_certificates(pem: str) -> bool:
    try:
        return bool(x509.load_pem_x509_certificates(pem.encode()))
    except ValueError:
        return False


# --- C2PA -----------------------------------------------------------------------------


def _c2pa_signals(data: bytes, mime: str | None, anchors: str | None) -> Iterator[Signal]:
    if mime is None:
        yield Signal("C2PA absent (format not supported for Content Credentials)")
        return
    settings = json.loads(json.dumps(C2PA_READ_SETTINGS))
    if anchors:
        settings["verify"]["verify_trust"] = True
        settings["trust"] = {"trust_anchors": anchors}
    try:
        with c2pa.Context.from_dict(settings) as context:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
            if reader is None:
                yield Signal("C2PA absent (no manifest; normal for phone captures)")
                return
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.NotSupported:
        yield Signal("C2PA absent (format not supported for Content Credentials)")
        return
    except c2pa.C2paError as exc:
        yield Signal(
            f"C2PA invalid: manifest present but unreadable ({str(exc)[:160]})",
            "metadata_tampered",
            0.7,
            0.7,
        )
        return
    except (ValueError, OSError) as exc:  # a malformed store JSON, a failing stream
        yield Signal(f"C2PA not checked ({type(exc).__name__}: {str(exc)[:120]})")
        return
    yield from _manifest_state_signals(store, anchors is not None)
    yield from _source_type_signals(store)


def _manifest_state_signals(store: dict[str, Any], anchored: bool) -> Iterator[Signal]:
    state = str(store.get("validation_state") or "").lower()
    failures = _failure_codes(store.get("validation_results") or {})
    trust_only = set(failures) <= {"signingCredential.untrusted"}
    if state == "trusted":
        yield Signal("C2PA trusted: signature valid and signer chains to a configured anchor")
    elif state == "valid" or (failures and trust_only):
        note = "; signer not in the configured trust anchors" if anchored else ""
        yield Signal(f"C2PA valid: signature and bindings verified{note}")
    else:
        codes = ", ".join(failures) or "no failure codes"
        yield Signal(
            f"C2PA invalid: {codes} (content or manifest changed after signing)",
            "metadata_tampered",
            0.75,
            0.85,
        )


def _failure_codes(results: dict[str, Any]) -> list[str]:
    codes: list[str] = []
    active = results.get("activeManifest") or {}
    for entry in active.get("failure") or []:
        codes.append(str(entry.get("code")))
    for delta in results.get("ingredientDeltas") or []:
        for entry in (delta.get("validationDeltas") or {}).get("failure") or []:
            codes.append(str(entry.get("code")))
    return sorted(set(codes))


def _source_type_signals(store: dict[str, Any]) -> Iterator[Signal]:
    declared = sorted({str(v).rsplit("/", 1)[-1] for v in _values_of(store, "digitalSourceType")})
    ai = [t for t in declared if t in AI_SOURCE_TYPES]
    if ai:
        yield Signal(
            f"C2PA declares digitalSourceType {', '.join(ai)} (made by a generator)",
            "synthetic",
            0.95,
            0.95,
        )
    elif declared:
        yield Signal(f"C2PA declares digitalSourceType {', '.join(declared)}")


def _values_of(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            else:
                yield from _values_of(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of(item, key)


# --- EXIF / XMP / PNG text ------------------------------------------------------------


@dataclass(frozen=True)
class ExifFacts:
    make: str = ""
    model: str = ""
    software: str = ""
    taken_at: str = ""  # "YYYY:MM:DD HH:MM:SS"
    offset: str = ""  # "+02:00"
    thumbnail: bytes = b""
    error: str = ""


def _read_exif(data: bytes) -> ExifFacts:
    try:
        tags = piexif.load(data)
    except Exception as exc:  # piexif raises bare ValueError/struct.error/... on junk
        return _read_exif_fallback(data, type(exc).__name__)
    zeroth, sub = tags.get("0th") or {}, tags.get("Exif") or {}
    return ExifFacts(
        make=_text(zeroth.get(piexif.ImageIFD.Make)),
        model=_text(zeroth.get(piexif.ImageIFD.Model)),
        software=_text(zeroth.get(piexif.ImageIFD.Software)),
        taken_at=_text(sub.get(piexif.ExifIFD.DateTimeOriginal)),
        offset=_text(sub.get(piexif.ExifIFD.OffsetTimeOriginal)),
        thumbnail=tags.get("thumbnail") or b"",
    )


def _read_exif_fallback(data: bytes, piexif_error: str) -> ExifFacts:
    """ExifRead parses containers piexif refuses (HEIC, some PNG/WebP layouts)."""
    try:
        tags = exifread.process_file(io.BytesIO(data), details=False)
    except Exception as exc:  # ExifRead is as loose as piexif about what it raises
        return ExifFacts(error=f"{piexif_error}/{type(exc).__name__}")
    thumb = tags.get("JPEGThumbnail")
    return ExifFacts(
        make=str(tags.get("Image Make", "")).strip(),
        model=str(tags.get("Image Model", "")).strip(),
        software=str(tags.get("Image Software", "")).strip(),
        taken_at=str(tags.get("EXIF DateTimeOriginal", "")).strip(),
        offset=str(tags.get("EXIF OffsetTimeOriginal", "")).strip(),
        thumbnail=thumb if isinstance(thumb, bytes) else b"",
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00 ")
    return str(value).strip() if value is not None else ""


XMP_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.DOTALL)
# The tools named in XMP, attribute or element form: xmp:CreatorTool, stEvt:softwareAgent.
XMP_TOOL = re.compile(r"(?:CreatorTool|softwareAgent)(?:\s*=\s*\"([^\"]*)\"|>([^<]*)<)")
GENERATOR_WORDS = re.compile("|".join(rf"\b{re.escape(g)}\b" for g in GENERATORS), re.IGNORECASE)
EDITOR_WORDS = re.compile("|".join(rf"\b{re.escape(e)}\b" for e in EDITORS), re.IGNORECASE)


def _xmp_text(data: bytes) -> str:
    match = XMP_PACKET.search(data)
    return match.group(0).decode("utf-8", "replace") if match else ""


def _marker_signals(exif: ExifFacts, png_text: dict[str, str], xmp: str) -> Iterator[Signal]:
    gen_keys = [k for k in png_text if k.lower() in GENERATOR_PNG_KEYS]
    if gen_keys:
        yield Signal(
            f"PNG text chunk {', '.join(repr(k) for k in gen_keys)} written by an image generator",
            "synthetic",
            0.9,
            0.85,
        )
    if any(t in xmp for t in AI_SOURCE_TYPES):
        yield Signal("XMP DigitalSourceType declares AI-generated media", "synthetic", 0.9, 0.9)
    sources = [("EXIF Software", exif.software)]
    sources += [(f"XMP tool {a or b!r}", a or b) for a, b in XMP_TOOL.findall(xmp)]
    sources += [(f"PNG text {k!r}", v) for k, v in png_text.items()]
    for where, value in sources:
        if generator := GENERATOR_WORDS.search(value):
            yield Signal(f"{where} names generator {generator[0]!r}", "synthetic", 0.9, 0.85)
        elif editor := EDITOR_WORDS.search(value):
            yield Signal(f"{where} names editor {editor[0]!r}", "edited", 0.5, 0.7)


def _camera_signals(exif: ExifFacts, evidence: Evidence) -> Iterator[Signal]:
    if exif.error:
        yield Signal(f"EXIF unreadable ({exif.error})")
    claims_camera = evidence.capture.device_signals.get("capture_source") == "camera"
    if exif.make or exif.model:
        yield Signal(f"camera {exif.make} {exif.model}".strip())
    elif claims_camera:
        yield Signal(
            "capture claims a camera but the image has no camera make/model (EXIF stripped)",
            "metadata_stripped",
            0.4,
            0.5,
        )


def _date_signals(exif: ExifFacts, evidence: Evidence) -> Iterator[Signal]:
    refs = [_utc(t) for t in (evidence.capture.captured_at, evidence.session_started_at) if t]
    if not exif.taken_at or not refs:
        return
    try:
        taken = datetime.strptime(exif.taken_at[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        yield Signal(
            f"EXIF DateTimeOriginal {exif.taken_at!r} is not a date", "metadata_tampered", 0.5, 0.5
        )
        return
    slack = NAIVE_CLOCK_SLACK
    if offset := _offset(exif.offset):
        taken, slack = taken - offset, AWARE_CLOCK_SLACK
    taken = taken.replace(tzinfo=UTC)
    earliest, latest = min(refs), max(refs)
    if taken > latest + slack:
        yield Signal(
            f"EXIF DateTimeOriginal {taken:%Y-%m-%d %H:%M} UTC is after the capture",
            "metadata_tampered",
            0.65,
            0.7,
        )
    elif taken < earliest - MAX_CAPTURE_AGE:
        age_h = (earliest - taken).total_seconds() / 3600
        yield Signal(
            f"EXIF DateTimeOriginal is {age_h:.0f} h before the session (photo taken earlier)",
            "stale_capture",
            0.6,
            0.7,
        )
    else:
        yield Signal("EXIF DateTimeOriginal consistent with the session")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _offset(text: str) -> timedelta | None:
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text.strip())
    if not match:
        return None
    delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
    return -delta if match[1] == "-" else delta


def _thumbnail_signals(exif: ExifFacts, pixels: Image.Image) -> Iterator[Signal]:
    if not exif.thumbnail:
        return
    try:
        with Image.open(io.BytesIO(exif.thumbnail)) as thumb:
            small_thumb = _grey32(thumb.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        yield Signal(f"EXIF thumbnail undecodable ({type(exc).__name__})")
        return
    diff = float(np.mean(np.abs(_grey32(pixels) - small_thumb)))
    if diff > THUMBNAIL_MAX_MEAN_DIFF:
        yield Signal(
            f"EXIF thumbnail shows a different picture (mean difference {diff:.2f}): "
            "the image was changed after capture",
            "metadata_tampered",
            0.7,
            0.75,
        )
    else:
        yield Signal(f"EXIF thumbnail matches the image (mean difference {diff:.2f})")


def _grey32(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
