"""Passive liveness on the selfie against the generated presentation attacks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from signgate import attacks
from signgate.detectors import faces as faces_module
from signgate.detectors.base import Evidence
from signgate.detectors.face_match import check_face_match
from signgate.detectors.faces import clear_image_cache
from signgate.detectors.forensics import check_deepfake
from signgate.detectors.liveness import check_liveness
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckResult, CheckStatus


def liveness_of(rgb: np.ndarray, quality: int = 90) -> CheckResult:
    media = {ArtifactKind.selfie: attacks.jpeg_bytes(rgb, quality)}
    return check_liveness(
        Evidence(session_id="s-1", capture=CaptureMetadata(challenge_nonce="n"), media=media)
    )


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.mark.parametrize("quality", [75, 92])
def test_bona_fide_astronaut_is_live_with_low_risk(astronaut: np.ndarray, quality: int) -> None:
    result = liveness_of(astronaut, quality)
    assert result.status is CheckStatus.completed and result.kind is CheckKind.liveness
    assert result.model_version.startswith("liveness/2 (")
    assert result.attack_hints == []
    assert result.risk_score is not None and result.risk_score < 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_screen_recapture_is_flagged_screen_replay(astronaut: np.ndarray, seed: int) -> None:
    result = liveness_of(attacks.screen_recapture(astronaut, seed))
    assert "screen_replay" in result.attack_hints and "print" not in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.5
    assert any("moiré" in line for line in result.explanations)


@pytest.mark.parametrize("seed", [0, 1])
def test_print_attack_is_flagged_print(astronaut: np.ndarray, seed: int) -> None:
    result = liveness_of(attacks.print_attack(astronaut, seed))
    assert "print" in result.attack_hints and "screen_replay" not in result.attack_hints
    assert any("gamut" in line for line in result.explanations)


def test_blurred_selfie_asks_to_hold_the_phone_steady(astronaut: np.ndarray) -> None:
    result = liveness_of(cv2.GaussianBlur(astronaut, (0, 0), 6))
    assert result.attack_hints == ["capture_quality"]
    assert any("hold the phone steady" in line for line in result.explanations)


def test_dark_selfie_asks_to_face_the_light(astronaut: np.ndarray) -> None:
    result = liveness_of((astronaut * 0.15).astype(np.uint8))
    assert "capture_quality" in result.attack_hints
    assert any("face the light" in line for line in result.explanations)


def test_small_face_asks_to_move_closer(astronaut: np.ndarray) -> None:
    canvas = np.full((1280, 1280, 3), 120, np.uint8)
    canvas[384:896, 384:896] = astronaut  # the face now covers ~0.5 % of the frame
    result = liveness_of(canvas)
    assert "capture_quality" in result.attack_hints
    assert any("move closer" in line for line in result.explanations)


def test_undecodable_selfie_is_an_error_not_an_exception() -> None:
    media = {ArtifactKind.selfie: b"definitely not an image"}
    result = check_liveness(
        Evidence(session_id="s", capture=CaptureMetadata(challenge_nonce="n"), media=media)
    )
    assert result.status is CheckStatus.error and result.reason == "image_undecodable"
    assert result.kind is CheckKind.liveness and result.model_version.startswith("liveness/2")


def test_liveness_forensics_and_face_match_share_one_detection_per_image(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_image_cache()
    calls: list[tuple[int, ...]] = []
    real_find = faces_module.find_faces

    def counting_find(rgb: np.ndarray) -> list[faces_module.Face]:
        calls.append(rgb.shape)
        return real_find(rgb)

    monkeypatch.setattr(faces_module, "find_faces", counting_find)
    selfie, id_front = attacks.jpeg_bytes(astronaut, 92), attacks.jpeg_bytes(astronaut, 80)
    media = {ArtifactKind.selfie: selfie, ArtifactKind.id_front: id_front}
    evidence = Evidence(session_id="s", capture=CaptureMetadata(challenge_nonce="n"), media=media)
    live = check_liveness(evidence)
    assert check_deepfake(evidence).status is CheckStatus.completed
    assert check_face_match(evidence).attack_hints == []
    assert len(calls) == 2  # one per image, not one per image per detector
    assert live.status is CheckStatus.completed and live.attack_hints == []
