"""Image forensics (deepfake check on stills) against the generated attacks."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from signgate import attacks
from signgate.detectors.base import Evidence
from signgate.detectors.forensics import GRID, analyse_image, check_deepfake
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckStatus

BOX = (179, 83, 267, 171)  # the astronaut's face


def evidence(selfie: bytes, id_front: bytes | None = None) -> Evidence:
    media = {ArtifactKind.selfie: selfie}
    if id_front is not None:
        media[ArtifactKind.id_front] = id_front
    return Evidence(session_id="s-1", capture=CaptureMetadata(challenge_nonce="n"), media=media)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.mark.parametrize("quality", [75, 92])
def test_bona_fide_astronaut_jpeg_passes_with_low_risk(astronaut: np.ndarray, quality: int) -> None:
    result = check_deepfake(evidence(attacks.jpeg_bytes(astronaut, quality)))
    assert result.status is CheckStatus.completed and result.kind is CheckKind.deepfake
    assert result.provider == "local" and result.model_version.startswith(
        "image-forensics/3 (numpy=="
    )
    assert result.attack_hints == []
    assert result.risk_score is not None and result.risk_score < 0.3


def test_bona_fide_non_face_photos_raise_no_hint() -> None:
    for image in (data.chelsea(), data.coffee()):
        assert check_deepfake(evidence(attacks.jpeg_bytes(image, 88))).attack_hints == []


def test_double_jpeg_60_then_90_is_flagged_double_compression(astronaut: np.ndarray) -> None:
    result = check_deepfake(evidence(attacks.double_jpeg(astronaut, 60, 90)))
    assert "double_compression" in result.attack_hints
    assert result.risk_score is not None and result.risk_score > 0.8
    assert any("last quality ~90" in line for line in result.explanations)


@pytest.mark.parametrize("size", [None, (1920, 1080)])
def test_generator_upsampling_is_flagged_synthetic(
    astronaut: np.ndarray, size: tuple[int, int] | None
) -> None:
    image = (
        astronaut if size is None else cv2.resize(astronaut, size, interpolation=cv2.INTER_CUBIC)
    )
    fake = attacks.jpeg_bytes(attacks.generator_upsample(image, 2), 90)
    result = check_deepfake(evidence(fake))
    assert "synthetic" in result.attack_hints
    assert any("upsampling grid" in line for line in result.explanations)


def test_a_forged_id_front_is_flagged_even_with_a_clean_selfie(astronaut: np.ndarray) -> None:
    forged = attacks.jpeg_bytes(attacks.generator_upsample(data.coffee(), 2), 90)
    result = check_deepfake(evidence(attacks.jpeg_bytes(astronaut, 90), id_front=forged))
    assert result.attack_hints == ["synthetic"]
    assert any(line.startswith("id_front:") for line in result.explanations)


def _hottest_cell_centre(jpeg: bytes) -> tuple[float, float]:
    report = analyse_image(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), jpeg)
    row, col = report.hottest_cell()
    cell = 512 / GRID
    return (col + 0.5) * cell, (row + 0.5) * cell


def _near(point: tuple[float, float], box: tuple[int, int, int, int]) -> bool:
    cell = 512 / GRID
    x0, y0, x1, y1 = box
    return x0 - cell <= point[0] <= x1 + cell and y0 - cell <= point[1] <= y1 + cell


def test_face_swap_is_flagged_splice_with_the_heatmap_hottest_on_the_pasted_face(
    astronaut: np.ndarray,
) -> None:
    # Her face cut with a margin from another photo (mirrored), compressed at q40 on its
    # own grid, pasted over her face: the face detector finds the pasted face, and the
    # grid in and around it is not the host's.
    other_photo = np.ascontiguousarray(astronaut[:, ::-1])
    face_cut = np.ascontiguousarray(other_photo[70:184, 232:346])
    spliced = attacks.jpeg_bytes(attacks.face_splice(astronaut, face_cut, BOX, seed=0), 92)
    result = check_deepfake(evidence(spliced))
    assert "splice" in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.5
    assert any("JPEG blocking grid at an offset" in line for line in result.explanations)
    assert _near(_hottest_cell_centre(spliced), BOX)


def test_region_pasted_in_the_middle_is_flagged_splice(astronaut: np.ndarray) -> None:
    # As `signgate attacks generate` builds the evaluation's face_splice species.
    box = (512 // 3, 512 // 4, 2 * 512 // 3, 3 * 512 // 4)
    spliced = attacks.jpeg_bytes(attacks.face_splice(astronaut, data.chelsea(), box, seed=0), 92)
    result = check_deepfake(evidence(spliced))
    assert "splice" in result.attack_hints
    assert _near(_hottest_cell_centre(spliced), box)


@pytest.mark.xfail(
    strict=True,
    reason="known gap (EVALUATION.md): a paste the face detector does not see as a face, "
    "away from the centre of the frame, is not scored; the heatmap shows it",
)
def test_non_face_pasted_over_the_face_is_flagged_splice(astronaut: np.ndarray) -> None:
    spliced = attacks.jpeg_bytes(attacks.face_splice(astronaut, data.chelsea(), BOX, seed=0), 92)
    assert _near(_hottest_cell_centre(spliced), BOX)  # seen on the heatmap ...
    assert "splice" in check_deepfake(evidence(spliced)).attack_hints  # ... but not scored


def test_report_carries_a_small_heatmap_and_its_png(astronaut: np.ndarray) -> None:
    jpeg = attacks.jpeg_bytes(astronaut, 90)
    report = analyse_image(astronaut, jpeg)
    assert report.heatmap.shape == (GRID, GRID)
    assert 0.0 <= report.heatmap.min() and report.heatmap.max() <= 1.0
    assert report.jpeg_quality == 90
    png = report.heatmap_png()
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size == (256, 256)
    assert set(report.scores) == {
        "double_compression",
        "grid",
        "region_compression",
        "upsampling",
    }


def test_without_jpeg_bytes_the_compression_signal_is_silent(astronaut: np.ndarray) -> None:
    report = analyse_image(astronaut, None)
    assert report.scores["double_compression"] == 0.0 and report.jpeg_quality is None


def test_undecodable_selfie_is_an_error_not_an_exception() -> None:
    result = check_deepfake(evidence(b"\xff\xd8 this is not a JPEG at all"))
    assert result.status is CheckStatus.error and result.reason == "image_undecodable"
    assert result.risk_score is None


def test_missing_selfie_is_an_error_naming_it() -> None:
    empty = Evidence(session_id="s-1", capture=CaptureMetadata(challenge_nonce="n"), media={})
    assert check_deepfake(empty).reason == "selfie_missing"
