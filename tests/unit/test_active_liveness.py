"""Active liveness and the temporal deepfake check on liveness videos.

No real face video ships offline: the clips are built from the public-domain astronaut
still by `signgate.evaluation.clips` (a local warp moves the nose against the eyes, plus a
small hand-held drift), encoded as Motion-JPEG and decoded again by OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from signgate.attacks import jpeg_bytes
from signgate.detectors.base import Evidence
from signgate.detectors.forensics import check_deepfake
from signgate.detectors.liveness import check_liveness
from signgate.detectors.motion import Pose, observed_moves
from signgate.evaluation.clips import clip_frames, encode_clip
from signgate.models import ArtifactKind, CaptureMetadata, CheckStatus


@pytest.fixture(scope="module")
def still() -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(data.astronaut(), (480, 480)))


@pytest.fixture(scope="module")
def left_then_up(still: np.ndarray) -> list[np.ndarray]:
    return clip_frames(still, ["turn_left", "look_up"])


def evidence(still: np.ndarray, video: bytes | None, challenge: tuple[str, ...]) -> Evidence:
    media = {ArtifactKind.selfie: jpeg_bytes(still, 90)}
    if video is not None:
        media[ArtifactKind.liveness_video] = video
    return Evidence(
        session_id="s-active",
        capture=CaptureMetadata(challenge_nonce="n"),
        media=media,
        motion_challenge=challenge,
    )


def test_the_moves_in_the_asked_order_meet_the_challenge(
    still: np.ndarray, left_then_up: list[np.ndarray]
) -> None:
    result = check_liveness(evidence(still, encode_clip(left_then_up), ("turn_left", "look_up")))
    assert result.status is CheckStatus.completed
    assert "challenge_not_met" not in result.attack_hints and result.reason is None
    assert any(
        line.startswith("challenge met: turn_left then look_up") for line in result.explanations
    )
    assert result.risk_score is not None and result.risk_score < 0.5


def test_the_same_moves_in_the_wrong_order_do_not(
    still: np.ndarray, left_then_up: list[np.ndarray]
) -> None:
    result = check_liveness(evidence(still, encode_clip(left_then_up), ("look_up", "turn_left")))
    assert result.reason == "challenge_not_met"
    assert "challenge_not_met" in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.6
    assert any("saw turn_left, look_up" in line for line in result.explanations)


def test_a_static_video_does_not_meet_any_challenge(still: np.ndarray) -> None:
    static = encode_clip(clip_frames(still, [], hold=10))
    result = check_liveness(evidence(still, static, ("turn_right", "look_up")))
    assert result.reason == "challenge_not_met"
    assert any("saw no move" in line for line in result.explanations)


@pytest.mark.parametrize("video", [None, b"not a video at all"])
def test_a_missing_or_unreadable_video_does_not_meet_the_challenge(
    still: np.ndarray, video: bytes | None
) -> None:
    result = check_liveness(evidence(still, video, ("turn_left", "turn_right")))
    assert result.status is CheckStatus.completed
    assert result.reason == "challenge_not_met"
    assert "challenge_not_met" in result.attack_hints


def test_without_a_challenge_the_video_is_not_read(still: np.ndarray) -> None:
    result = check_liveness(evidence(still, b"not a video at all", ()))
    assert result.reason is None and result.attack_hints == []
    assert not any("challenge" in line for line in result.explanations)


def poses(*yaw_pitch: tuple[float, float]) -> list[Pose]:
    return [Pose(yaw, pitch) for yaw, pitch in yaw_pitch]


def test_extra_moves_and_one_frame_glitches_are_read_as_they_are() -> None:
    neutral = [(0.0, 0.7)] * 3
    left, right, up = (0.2, 0.7), (-0.2, 0.7), (0.0, 0.55)
    assert observed_moves(poses(*neutral, left, left, up, up)) == ("turn_left", "look_up")
    # every move in turn would answer every challenge if extras were allowed
    assert observed_moves(poses(*neutral, left, left, right, right, up, up)) == (
        "turn_left",
        "turn_right",
        "look_up",
    )
    # a single-frame landmark glitch is not a move
    assert observed_moves(poses(*neutral, right, (0.0, 0.7), up, up)) == ("look_up",)


def rerendered_face(frames: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Each frame's face region re-rendered with its own blur and noise, as a per-frame
    face swap would; the background is the camera's, untouched."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        x0, y0, x1, y1 = 150, 60, 300, 230  # the astronaut's face at 480 px
        face = frame[y0:y1, x0:x1].astype(np.float32)
        face = cv2.GaussianBlur(face, (0, 0), float(rng.uniform(0.3, 2.5)))
        face += rng.normal(0.0, float(rng.uniform(0.5, 6.0)), face.shape)
        swapped = frame.copy()
        swapped[y0:y1, x0:x1] = np.clip(face, 0, 255).astype(np.uint8)
        out.append(swapped)
    return out


def test_a_clip_with_a_steady_face_passes_the_temporal_check(
    still: np.ndarray, left_then_up: list[np.ndarray]
) -> None:
    result = check_deepfake(evidence(still, encode_clip(left_then_up), ()))
    assert "temporal_inconsistency" not in result.attack_hints
    assert any(
        line.startswith("liveness video: face texture jitter") for line in result.explanations
    )
    assert result.risk_score is not None and result.risk_score < 0.5


def test_a_face_re_rendered_per_frame_is_flagged_by_the_temporal_check(
    still: np.ndarray, left_then_up: list[np.ndarray]
) -> None:
    result = check_deepfake(evidence(still, encode_clip(rerendered_face(left_then_up)), ()))
    assert "temporal_inconsistency" in result.attack_hints
    assert result.risk_score is not None and result.risk_score >= 0.5


def test_a_long_clip_is_sampled_evenly_into_a_bounded_number_of_frames() -> None:
    from signgate.detectors.video import MAX_FRAMES, read_frames

    frames = [np.full((64, 80, 3), i * 2, np.uint8) for i in range(90)]
    read = read_frames(encode_clip(frames))
    assert len(read) == MAX_FRAMES < 90
    levels = [int(f.mean() / 2 + 0.5) for f in read]
    # first and last frame (within lossy MPEG-4 rounding), evenly in between
    assert levels[0] <= 2 and levels[-1] >= 86
    assert levels == sorted(levels)
