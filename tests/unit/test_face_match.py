"""Face match on real faces bundled with scikit-image (no download).

Identities available offline: Eileen Collins (`astronaut`, public domain), Lav Varshney
(`camera`, CC0, a three-quarter profile the frontal detector only finds below our score
floor) and the 100 low-resolution (25x25 grey) faces of `lfw_subset` (LFW, read in place
from the installed package). LFW is dlib's own benchmark, so "different" here is
in-distribution for the model: it proves the wiring, not our error rates.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from signgate.detectors.base import Evidence
from signgate.detectors.face_match import (
    MODEL_VERSION,
    THRESHOLD,
    check_face_match,
    embed,
    mismatch_risk,
)
from signgate.detectors.faces import detect_faces, image_faces
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckStatus


def _encode(rgb: np.ndarray, fmt: str = "PNG", **kw: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, **kw)
    return out.getvalue()


def _evidence(selfie: bytes | None, id_front: bytes | None) -> Evidence:
    media = {}
    if selfie is not None:
        media[ArtifactKind.selfie] = selfie
    if id_front is not None:
        media[ArtifactKind.id_front] = id_front
    return Evidence("sess-face-1", CaptureMetadata(challenge_nonce="n"), media)


def _id_photo(rgb: np.ndarray) -> bytes:
    """A passport-style crop of the astronaut: cropped, tilted 5 degrees, shrunk, JPEG 70."""
    img = Image.fromarray(rgb[10:260, 120:340]).rotate(-5, resample=Image.Resampling.BICUBIC)
    card = np.asarray(img.resize((176, 200), Image.Resampling.BICUBIC))
    return _encode(card, "JPEG", quality=70)


def _lfw_face(index: int) -> np.ndarray:
    """One LFW-subset face (25x25 grey), upscaled to 200x200 RGB like a poor ID scan."""
    gray = (data.lfw_subset()[index] * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(gray).resize((200, 200), Image.Resampling.BICUBIC))
    return np.dstack([big] * 3)


def _astronaut_embedding() -> np.ndarray:
    rgb = data.astronaut()
    return embed(rgb, detect_faces(rgb)[0])


# --------------------------------------------------------------------------- calibration


def test_risk_is_a_logistic_centred_on_dlibs_threshold() -> None:
    assert mismatch_risk(THRESHOLD) == pytest.approx(0.5)
    assert mismatch_risk(0.4) < 0.02 < 0.98 < mismatch_risk(0.8)
    distances = np.linspace(0.0, 1.2, 25)
    risks = [mismatch_risk(float(d)) for d in distances]
    assert risks == sorted(risks)


def test_embedding_is_128_d_and_stable() -> None:
    vec = _astronaut_embedding()
    assert vec.shape == (128,)
    assert np.allclose(vec, _astronaut_embedding())


# --------------------------------------------------------------------------- same person


def test_same_face_as_id_photo_matches_with_low_risk() -> None:
    rgb = data.astronaut()
    result = check_face_match(_evidence(_encode(rgb), _id_photo(rgb)))
    assert result.kind is CheckKind.face_match
    assert result.status is CheckStatus.completed
    assert result.risk_score is not None and result.risk_score < 0.05
    # far from the threshold (0.95), lowered x0.7 because the ID face is only 76 px wide
    assert result.confidence == pytest.approx(0.665)
    assert any("ID face is under 80 px" in e for e in result.explanations)
    assert result.attack_hints == []
    assert result.model_version == MODEL_VERSION and "dlib-bin==" in MODEL_VERSION
    assert result.provider == "local"
    assert result.raw_response_sha256 is not None
    assert any("box=[175, 76, 266, 167]" in e for e in result.explanations)
    assert any("distance 0." in e and "same person" in e for e in result.explanations)


def test_a_large_clear_id_photo_gives_high_confidence() -> None:
    rgb = data.astronaut()
    id_photo = _encode(rgb[0:300, 100:400], "JPEG", quality=80)
    result = check_face_match(_evidence(_encode(rgb), id_photo))
    assert result.risk_score is not None and result.risk_score < 0.01
    assert result.confidence == pytest.approx(0.95)
    assert not any("under 80 px" in e for e in result.explanations)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda im: im.resize((307, 307), Image.Resampling.BICUBIC), id="resized"),
        pytest.param(lambda im: im.rotate(7, resample=Image.Resampling.BICUBIC), id="rotated"),
        pytest.param(lambda im: im.crop((100, 0, 400, 300)), id="cropped"),
        pytest.param(lambda im: im.convert("L").convert("RGB"), id="grey"),
        pytest.param(lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), id="mirrored"),
    ],
)
def test_reencoded_variants_of_one_face_stay_under_the_threshold(variant: object) -> None:
    rgb = data.astronaut()
    other = np.asarray(variant(Image.fromarray(rgb)))  # type: ignore[operator]
    faces = detect_faces(other)
    assert len(faces) == 1
    distance = float(np.linalg.norm(embed(other, faces[0]) - _astronaut_embedding()))
    assert distance < 0.3


# --------------------------------------------------------------------------- different person


def test_a_different_person_on_the_id_is_a_mismatch() -> None:
    # LFW-subset face 24: the one the detector finds most confidently at default settings.
    result = check_face_match(_evidence(_encode(data.astronaut()), _encode(_lfw_face(24))))
    assert result.status is CheckStatus.completed
    assert result.risk_score is not None and result.risk_score > 0.9
    assert result.attack_hints == ["face_mismatch"]
    assert any("different people" in e for e in result.explanations)


def test_lfw_faces_are_other_people_but_a_degraded_astronaut_is_not() -> None:
    """Control for resolution: the astronaut degraded exactly like LFW (25x25 grey, then
    upscaled) still matches herself, so LFW's large distances are identity, not blur."""
    reference = _astronaut_embedding()
    gray = np.asarray(Image.fromarray(data.astronaut()).convert("L"))[50:190, 165:305]
    tiny = Image.fromarray(gray).resize((25, 25), Image.Resampling.BILINEAR)
    degraded = np.dstack([np.asarray(tiny.resize((200, 200), Image.Resampling.BICUBIC))] * 3)
    self_face = detect_faces(degraded)
    assert len(self_face) == 1
    assert float(np.linalg.norm(embed(degraded, self_face[0]) - reference)) < THRESHOLD

    distances = []
    for index in range(100):
        rgb = _lfw_face(index)
        faces = detect_faces(rgb)
        if faces:
            distances.append(float(np.linalg.norm(embed(rgb, faces[0]) - reference)))
    assert len(distances) >= 60
    assert np.median(distances) > 0.7
    assert np.mean(np.array(distances) > THRESHOLD) >= 0.95


def test_the_cameraman_is_not_the_astronaut() -> None:
    # His face is turned away: the frontal detector only finds it upsampled, below MIN_SCORE.
    rgb = np.dstack([data.camera()] * 3)
    faces = detect_faces(rgb, upsample=3, min_score=0.0)
    assert faces and 200 <= faces[0].box[0] <= 230
    distance = float(np.linalg.norm(embed(rgb, faces[0]) - _astronaut_embedding()))
    assert distance > THRESHOLD


# --------------------------------------------------------------------------- explicit outcomes


def test_no_face_in_the_selfie_is_a_high_risk_low_confidence_outcome() -> None:
    rgb = data.astronaut()
    result = check_face_match(_evidence(_encode(data.coffee()), _id_photo(rgb)))
    assert result.status is CheckStatus.completed
    assert result.attack_hints == ["no_face_selfie"] and result.reason == "no_face_selfie"
    assert result.risk_score == pytest.approx(0.7) and result.confidence == pytest.approx(0.2)


def test_no_face_on_the_id_is_its_own_outcome() -> None:
    result = check_face_match(_evidence(_encode(data.astronaut()), _encode(data.coffee())))
    assert result.status is CheckStatus.completed
    assert result.reason == "no_face_id" and result.attack_hints == ["no_face_id"]


def _two_faces(second_scale: float = 1.0) -> np.ndarray:
    face = Image.fromarray(data.astronaut()[0:220, 140:330])
    canvas = np.full((300, 420, 3), 200, dtype=np.uint8)
    canvas[40:260, 0:190] = np.asarray(face.resize((190, 220)))
    w, h = int(190 * second_scale), int(220 * second_scale)
    canvas[40 : 40 + h, 220 : 220 + w] = np.asarray(face.resize((w, h)))
    return canvas


def test_two_faces_in_the_selfie_are_flagged() -> None:
    rgb = data.astronaut()
    result = check_face_match(_evidence(_encode(_two_faces()), _id_photo(rgb)))
    assert result.status is CheckStatus.completed
    assert result.attack_hints == ["multiple_faces"] and result.reason == "multiple_faces"
    assert result.risk_score is not None and result.risk_score >= 0.5
    assert sum("second face in the selfie" in e for e in result.explanations) == 1


def test_a_ghost_portrait_of_the_same_person_on_the_id_is_not_flagged() -> None:
    id_card = _encode(_two_faces(second_scale=0.8), "JPEG", quality=85)
    result = check_face_match(_evidence(_encode(data.astronaut()), id_card))
    assert result.status is CheckStatus.completed
    assert result.attack_hints == []
    assert any("ghost portrait" in e for e in result.explanations)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("drop", ["selfie", "id_front"])
def test_missing_artifact_is_an_error_not_a_score(drop: str) -> None:
    png = _encode(data.astronaut())
    evidence = _evidence(None if drop == "selfie" else png, None if drop == "id_front" else png)
    result = check_face_match(evidence)
    assert result.status is CheckStatus.error and result.reason == "artifact_missing"
    assert result.risk_score is None
    assert drop in result.explanations[0]


def test_undecodable_selfie_is_an_error_with_its_reason() -> None:
    result = check_face_match(_evidence(b"\x89PNG garbage", _encode(data.astronaut())))
    assert result.status is CheckStatus.error and result.reason == "image_undecodable"


# --------------------------------------------------------------------------- large images


def _full_hd_selfie() -> np.ndarray:
    """The astronaut at 1080x1080 in the middle of a 1920x1080 frame (edges replicated)."""
    square = np.asarray(Image.fromarray(data.astronaut()).resize((1080, 1080)))
    return np.pad(square, ((0, 0), (420, 420), (0, 0)), mode="edge")


def test_a_full_hd_selfie_matches_the_id_photo_with_full_resolution_boxes() -> None:
    # detected on a 640 px copy; the box, the alignment and the embedding are full-size
    selfie = _encode(_full_hd_selfie(), "JPEG", quality=90)
    result = check_face_match(_evidence(selfie, _id_photo(data.astronaut())))
    assert result.status is CheckStatus.completed
    assert result.risk_score is not None and result.risk_score < 0.05
    assert result.attack_hints == []
    box_line = next(e for e in result.explanations if e.startswith("selfie face box="))
    x0 = int(box_line.split("box=[")[1].split(",")[0])
    scale = 1080 / 512  # her face starts at x ~170..180 of 512: x 778..800 of the frame
    assert 420 + 160 * scale <= x0 <= 420 + 190 * scale


def test_the_full_hd_embedding_is_the_astronaut() -> None:
    rgb = _full_hd_selfie()
    found = image_faces(_encode(rgb))
    assert len(found.faces) == 1
    distance = float(np.linalg.norm(embed(found.rgb, found.faces[0]) - _astronaut_embedding()))
    assert distance < 0.3
