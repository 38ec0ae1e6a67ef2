"""The local provenance detector on real images: skimage's astronaut photo (public domain)
saved with Pillow, EXIF written by piexif, C2PA manifests signed offline with a test CA."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import c2pa
import numpy as np
import piexif
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, PngImagePlugin
from skimage import data

from signgate.detectors.base import Evidence
from signgate.detectors.provenance import check_provenance
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckResult, CheckStatus

SESSION_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CAPTURED_AT = SESSION_START + timedelta(minutes=3)
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAMERA_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def _jpeg(pixels: np.ndarray, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    if exif is None:
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def _thumbnail(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    image.thumbnail((160, 160))
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _exif(
    *,
    make: str = "Google",
    model: str = "Pixel 8",
    software: str | None = None,
    taken_at: datetime = CAPTURED_AT,
    thumbnail_of: np.ndarray | None = None,
) -> bytes:
    zeroth: dict[int, bytes] = {
        piexif.ImageIFD.Make: make.encode(),
        piexif.ImageIFD.Model: model.encode(),
    }
    if software is not None:
        zeroth[piexif.ImageIFD.Software] = software.encode()
    exif = {
        piexif.ExifIFD.DateTimeOriginal: taken_at.strftime("%Y:%m:%d %H:%M:%S").encode(),
        piexif.ExifIFD.OffsetTimeOriginal: b"+00:00",
    }
    tags: dict[str, object] = {"0th": zeroth, "Exif": exif}
    if thumbnail_of is not None:
        tags["1st"] = {piexif.ImageIFD.Compression: 6}
        tags["thumbnail"] = _thumbnail(thumbnail_of)
    return piexif.dump(tags)


def _check(
    image: bytes,
    *,
    claims_camera: bool = True,
    anchors: str | None = None,
) -> CheckResult:
    capture = CaptureMetadata(
        challenge_nonce="nonce-1",
        captured_at=CAPTURED_AT,
        device_signals={"capture_source": "camera"} if claims_camera else {},
    )
    evidence = Evidence(
        session_id="s-1",
        capture=capture,
        media={ArtifactKind.selfie: image},
        session_started_at=SESSION_START,
    )
    return check_provenance(evidence, trust_anchors_pem=anchors)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(data.astronaut())


def test_camera_jpeg_with_consistent_exif_passes_with_low_risk(astronaut: np.ndarray) -> None:
    result = _check(_jpeg(astronaut, _exif(thumbnail_of=astronaut)))
    assert result.kind is CheckKind.provenance
    assert result.status is CheckStatus.completed
    assert result.provider == "local"
    assert result.model_version.startswith("provenance/1 (c2pa-python==")
    assert result.attack_hints == []
    assert result.risk_score is not None and result.risk_score < 0.1
    joined = " ".join(result.explanations)
    assert "camera Google Pixel 8" in joined
    assert "thumbnail matches" in joined
    assert "consistent with the session" in joined


def test_missing_c2pa_adds_no_risk_and_is_explained_as_absent(astronaut: np.ndarray) -> None:
    result = _check(_jpeg(astronaut, _exif()))
    assert result.risk_score == 0.0
    assert any("C2PA absent" in e for e in result.explanations)


def test_stable_diffusion_software_tag_is_synthetic(astronaut: np.ndarray) -> None:
    result = _check(_jpeg(astronaut, _exif(software="Stable Diffusion XL")))
    assert "synthetic" in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.85


def test_png_with_generator_parameters_chunk_is_synthetic(astronaut: np.ndarray) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a portrait photo, Steps: 30, Sampler: Euler a, CFG scale: 7")
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, "PNG", pnginfo=info)
    result = _check(out.getvalue(), claims_camera=False)
    assert result.attack_hints == ["synthetic"]
    assert result.risk_score is not None and result.risk_score >= 0.85


def test_photoshop_software_tag_is_edited_with_moderate_risk(astronaut: np.ndarray) -> None:
    result = _check(_jpeg(astronaut, _exif(software="Adobe Photoshop 25.0 (Windows)")))
    assert result.attack_hints == ["edited"]
    assert result.risk_score is not None and 0.3 <= result.risk_score < 0.85


def test_camera_claim_with_exif_stripped_is_metadata_stripped(astronaut: np.ndarray) -> None:
    stripped = _jpeg(astronaut)
    assert _check(stripped).attack_hints == ["metadata_stripped"]
    # The same bytes from an app that does not claim a camera (an upload) are fine.
    assert _check(stripped, claims_camera=False).attack_hints == []


def test_photo_taken_three_days_before_the_session_is_stale(astronaut: np.ndarray) -> None:
    old = _exif(taken_at=SESSION_START - timedelta(days=3))
    result = _check(_jpeg(astronaut, old))
    assert result.attack_hints == ["stale_capture"]
    assert result.risk_score is not None and result.risk_score >= 0.5


def test_photo_dated_after_the_capture_is_metadata_tampered(astronaut: np.ndarray) -> None:
    future = _exif(taken_at=CAPTURED_AT + timedelta(days=2))
    assert _check(_jpeg(astronaut, future)).attack_hints == ["metadata_tampered"]


def test_exif_thumbnail_of_another_picture_is_metadata_tampered(astronaut: np.ndarray) -> None:
    other = np.asarray(data.coffee())
    result = _check(_jpeg(astronaut, _exif(thumbnail_of=other)))
    assert result.attack_hints == ["metadata_tampered"]
    assert any("different picture" in e for e in result.explanations)


def _xmp(creator_tool: str, source_type: str | None = None) -> bytes:
    source = f' Iptc4xmpExt:DigitalSourceType="{source_type}"' if source_type else ""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' xmp:CreatorTool="{creator_tool}"{source}/></rdf:RDF></x:xmpmeta>'
    ).encode()


def _jpeg_with_xmp(pixels: np.ndarray, xmp: bytes) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=_exif(), xmp=xmp)
    return out.getvalue()


def test_xmp_creator_tool_naming_a_generator_is_synthetic(astronaut: np.ndarray) -> None:
    result = _check(_jpeg_with_xmp(astronaut, _xmp("Adobe Firefly Image 3")))
    assert result.attack_hints == ["synthetic"]
    assert any("XMP tool" in e for e in result.explanations)


def test_xmp_creator_tool_naming_an_editor_is_edited(astronaut: np.ndarray) -> None:
    assert _check(_jpeg_with_xmp(astronaut, _xmp("GIMP 2.10"))).attack_hints == ["edited"]


def test_xmp_source_type_composite_with_ai_is_synthetic(astronaut: np.ndarray) -> None:
    source = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    result = _check(_jpeg_with_xmp(astronaut, _xmp("Google Photos", source)))
    assert result.attack_hints == ["synthetic"]


def test_marker_words_match_whole_words_only(astronaut: np.ndarray) -> None:
    # "Canvas" is not Canva, "Reimagined" is not Imagen.
    result = _check(_jpeg(astronaut, _exif(software="Canvas Reimagined Camera 2.1")))
    assert result.attack_hints == []


def test_every_image_artifact_is_examined_and_named(astronaut: np.ndarray) -> None:
    evidence = Evidence(
        session_id="s-1",
        capture=CaptureMetadata(challenge_nonce="n", captured_at=CAPTURED_AT),
        media={
            ArtifactKind.selfie: _jpeg(astronaut, _exif()),
            ArtifactKind.id_back: _jpeg(astronaut, _exif(software="GIMP 2.10")),
        },
        session_started_at=SESSION_START,
    )
    result = check_provenance(evidence)
    assert result.attack_hints == ["edited"]
    assert any(e.startswith("id_back: EXIF Software names editor") for e in result.explanations)
    assert not any(e.startswith("selfie:") and "editor" in e for e in result.explanations)


def test_undecodable_image_is_explained_not_raised() -> None:
    result = _check(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    assert result.status is CheckStatus.completed
    assert result.attack_hints == []
    assert any("could not be decoded" in e for e in result.explanations)


def test_no_image_artifact_gives_zero_confidence() -> None:
    evidence = Evidence(session_id="s-1", capture=CaptureMetadata(challenge_nonce="n"), media={})
    result = check_provenance(evidence)
    assert result.confidence == 0.0
    assert result.explanations == ["no image artifact to examine"]


# --- C2PA, signed offline with a throwaway CA ------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signgate tests"),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TestCA:
    """A root CA and one ES256 end-entity signer, valid for a month around now."""

    __test__ = False

    def __init__(self) -> None:
        now = datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name("test root"))
            .issuer_name(_name("test root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(signer=False), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = (
            x509.CertificateBuilder()
            .subject_name(_name("test signer"))
            .issuer_name(self.root.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signer=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> str:
        return _pem(self.root).decode()

    def sign(self, jpeg: bytes, source_type: str) -> bytes:
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        info = c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, _pem(self.leaf) + _pem(self.root), key_pem, None
        )
        manifest = {
            "claim_generator_info": [{"name": "signgate-tests", "version": "1"}],
            "title": "selfie.jpg",
            "format": "image/jpeg",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]
                    },
                }
            ],
        }
        settings = {
            "verify": {"remote_manifest_fetch": False},
            "builder": {"thumbnail": {"enabled": False}},
        }
        out = io.BytesIO()
        with (
            c2pa.Context.from_dict(settings) as context,
            c2pa.Builder(manifest, context=context) as builder,
            c2pa.Signer.from_info(info) as signer,
        ):
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
        return out.getvalue()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def camera_jpeg(astronaut: np.ndarray) -> bytes:
    return _jpeg(astronaut, _exif())


def test_signed_camera_capture_is_c2pa_valid_without_anchors(
    ca: TestCA, camera_jpeg: bytes
) -> None:
    result = _check(ca.sign(camera_jpeg, CAMERA_SOURCE))
    assert result.attack_hints == []
    assert result.risk_score == 0.0
    assert any("C2PA valid" in e for e in result.explanations)
    assert any("digitalCapture" in e for e in result.explanations)


def test_signed_capture_is_trusted_against_its_root(ca: TestCA, camera_jpeg: bytes) -> None:
    signed = ca.sign(camera_jpeg, CAMERA_SOURCE)
    assert any("C2PA trusted" in e for e in _check(signed, anchors=ca.root_pem).explanations)
    stranger = TestCA()
    untrusted = _check(signed, anchors=stranger.root_pem)
    assert not any("C2PA trusted" in e for e in untrusted.explanations)
    assert any("not in the configured trust anchors" in e for e in untrusted.explanations)


def test_pixels_changed_after_signing_make_c2pa_invalid(ca: TestCA, camera_jpeg: bytes) -> None:
    signed = bytearray(ca.sign(camera_jpeg, CAMERA_SOURCE))
    # Flip bytes in the entropy-coded scan, well before the EOI marker: same structure,
    # different picture, so the hard binding (data hash) no longer matches.
    for offset in range(len(signed) - 4000, len(signed) - 3000, 97):
        signed[offset] ^= 0x01
    result = _check(bytes(signed))
    assert "metadata_tampered" in result.attack_hints
    invalid = [e for e in result.explanations if "C2PA invalid" in e]
    assert invalid and "assertion.dataHash.mismatch" in invalid[0]


def test_manifest_declaring_trained_algorithmic_media_is_synthetic(
    ca: TestCA, camera_jpeg: bytes
) -> None:
    result = _check(ca.sign(camera_jpeg, AI_SOURCE), anchors=ca.root_pem)
    assert "synthetic" in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.9
    assert result.confidence is not None and result.confidence >= 0.9


def test_corrupted_manifest_is_invalid_not_an_exception(ca: TestCA, camera_jpeg: bytes) -> None:
    signed = bytearray(ca.sign(camera_jpeg, CAMERA_SOURCE))
    start = signed.find(b"jumb")
    assert start > 0
    signed[start + 40 : start + 240] = bytes(200)
    result = _check(bytes(signed))
    assert result.status is CheckStatus.completed
    assert "metadata_tampered" in result.attack_hints
    assert any("C2PA invalid" in e for e in result.explanations)


def test_bad_trust_anchor_pem_is_explained_not_raised(ca: TestCA, camera_jpeg: bytes) -> None:
    result = _check(ca.sign(camera_jpeg, CAMERA_SOURCE), anchors="not a certificate")
    assert result.status is CheckStatus.completed
    assert result.attack_hints == []
    assert result.explanations[0].startswith("configured C2PA trust anchors are not PEM")
    assert any("C2PA valid" in e for e in result.explanations)


def test_1080p_thumbnail_is_compared_on_a_reduced_decode(astronaut: np.ndarray) -> None:
    # Provenance decodes a JPEG at 1/8 scale (cheap tier): the comparison must still hold.
    frame = np.asarray(Image.fromarray(astronaut).resize((1920, 1080)))
    matching = _check(_jpeg(frame, _exif(thumbnail_of=frame)))
    assert matching.attack_hints == []
    assert any("thumbnail matches" in e for e in matching.explanations)
    other = np.asarray(Image.fromarray(np.asarray(data.coffee())).resize((1920, 1080)))
    assert _check(_jpeg(frame, _exif(thumbnail_of=other))).attack_hints == ["metadata_tampered"]


def test_truncated_jpeg_is_explained_as_undecodable(astronaut: np.ndarray) -> None:
    jpeg = _jpeg(astronaut, _exif())
    result = _check(jpeg[: len(jpeg) // 2])
    assert result.status is CheckStatus.completed
    assert any("could not be decoded" in e for e in result.explanations)
