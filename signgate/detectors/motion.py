"""Active liveness: did the person in the video make the moves the workflow asked for?

The workflow draws a random challenge of two different moves out of MOVES (e.g.
`turn_left, look_up`) per capture round; the app shows it and records the liveness
video. A replayed or pre-rendered clip does not know the challenge in advance.

Pose from dlib's 5 landmarks (both corners of each eye, the base of the nose), per frame,
relative to the inter-ocular distance (so the face's size and distance do not matter):

- yaw = (nose.x - eye midpoint.x) / inter-ocular distance. The nose leaves the eye
  midpoint towards the side the head turns to. `turn_left` is the person's left, which
  in an unmirrored front-camera frame is image +x.
- pitch = (nose.y - eye midpoint.y) / inter-ocular distance. Tilting the head back
  (`look_up`) brings the projected nose base closer to the eye line.

The neutral pose is the median of the first NEUTRAL_FRAMES face frames. Each frame is read
as one move when its pose departs from neutral by more than the thresholds (yaw first: a
turn also shifts pitch a little). Consecutive equal reads collapse to one move, and
neutral frames in between are skipped. The challenge is met only when the observed moves
are exactly the challenge, in its order: extra moves fail too, or a clip doing every move
would answer every challenge.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from signgate.detectors.base import Evidence
from signgate.detectors.faces import Face
from signgate.detectors.video import VideoFrame, VideoUndecodable, frames_with_faces
from signgate.models import ArtifactKind

MOVES = ("turn_left", "turn_right", "look_up")
CHALLENGE_LENGTH = 2
NEUTRAL_FRAMES = 3
MIN_FACE_FRAMES = 6  # fewer frames with one face: the clip cannot show two moves
YAW_THRESHOLD = 0.12  # of the inter-ocular distance
PITCH_THRESHOLD = 0.10
MIN_MOVE_FRAMES = 2  # a move must hold for this many sampled frames (not a landmark glitch)


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float


@dataclass(frozen=True)
class ChallengeReport:
    met: bool
    observed: tuple[str, ...]
    face_frames: int
    frames: int
    reason: str  # why it was not met ("" when met)
    poses: tuple[Pose, ...]


def pose_of(face: Face) -> Pose | None:
    """Yaw and pitch ratios from dlib's 5 points; None when the landmarks are degenerate."""
    if len(face.landmarks) != 5:
        return None
    (ax, ay), (bx, by), (cx, cy), (dx, dy), (nx, ny) = face.landmarks
    eye_a = ((ax + bx) / 2.0, (ay + by) / 2.0)
    eye_b = ((cx + dx) / 2.0, (cy + dy) / 2.0)
    distance = ((eye_a[0] - eye_b[0]) ** 2 + (eye_a[1] - eye_b[1]) ** 2) ** 0.5
    if distance < 4.0:
        return None
    mid_x, mid_y = (eye_a[0] + eye_b[0]) / 2.0, (eye_a[1] + eye_b[1]) / 2.0
    return Pose(yaw=(nx - mid_x) / distance, pitch=(ny - mid_y) / distance)


def move_of(pose: Pose, neutral: Pose) -> str | None:
    yaw = pose.yaw - neutral.yaw
    if yaw > YAW_THRESHOLD:
        return "turn_left"
    if yaw < -YAW_THRESHOLD:
        return "turn_right"
    if pose.pitch - neutral.pitch < -PITCH_THRESHOLD:
        return "look_up"
    return None


def observed_moves(poses: Sequence[Pose]) -> tuple[str, ...]:
    """The moves, collapsed, from the poses after the neutral ones."""
    neutral = Pose(
        yaw=statistics.median(p.yaw for p in poses[:NEUTRAL_FRAMES]),
        pitch=statistics.median(p.pitch for p in poses[:NEUTRAL_FRAMES]),
    )
    runs: list[tuple[str | None, int]] = []
    for pose in poses[NEUTRAL_FRAMES:]:
        move = move_of(pose, neutral)
        if runs and runs[-1][0] == move:
            runs[-1] = (move, runs[-1][1] + 1)
        else:
            runs.append((move, 1))
    moves: list[str] = []
    for move, length in runs:
        if move is not None and length >= MIN_MOVE_FRAMES and (not moves or moves[-1] != move):
            moves.append(move)
    return tuple(moves)


def verify_challenge(frames: Sequence[VideoFrame], challenge: Sequence[str]) -> ChallengeReport:
    """Whether the clip shows exactly `challenge`, in order. Never raises."""
    poses = []
    for frame in frames:
        # A frame with two faces is skipped: whose pose would it be?
        if len(frame.faces) == 1 and (pose := pose_of(frame.faces[0])) is not None:
            poses.append(pose)
    if len(poses) < MIN_FACE_FRAMES:
        return ChallengeReport(
            met=False,
            observed=(),
            face_frames=len(poses),
            frames=len(frames),
            reason=f"only {len(poses)} of {len(frames)} frames show one face",
            poses=tuple(poses),
        )
    observed = observed_moves(poses)
    met = observed == tuple(challenge)
    reason = (
        "" if met else f"asked {' then '.join(challenge)}, saw {', '.join(observed) or 'no move'}"
    )
    return ChallengeReport(met, observed, len(poses), len(frames), reason, tuple(poses))


# --------------------------------------------------------------------------- the check part

CHALLENGE_NOT_MET = "challenge_not_met"
# Liveness risk of a round whose challenge was not met: high enough never to look clean,
# below the single-check review bar, so the policy's step-up rule (a fresh challenge)
# decides, and a second failure goes to a person.
NOT_MET_RISK = 0.6


@dataclass(frozen=True)
class ActiveLiveness:
    met: bool
    explanation: str


def assess_challenge(evidence: Evidence) -> ActiveLiveness | None:
    """The active part of the liveness check; None when the round asked for no challenge.

    No video, an unreadable video or a wrong answer are all `challenge_not_met`: the person
    can capture again, which is what the policy asks for."""
    challenge = evidence.motion_challenge
    if not challenge:
        return None
    asked = " then ".join(challenge)
    data = evidence.media.get(ArtifactKind.liveness_video)
    if data is None:
        return ActiveLiveness(False, f"{CHALLENGE_NOT_MET}: asked {asked}, no liveness video")
    try:
        frames = frames_with_faces(data)
    except VideoUndecodable as exc:
        return ActiveLiveness(False, f"{CHALLENGE_NOT_MET}: asked {asked}, video: {exc}")
    report = verify_challenge(frames, challenge)
    if report.met:
        return ActiveLiveness(
            True,
            f"challenge met: {asked}, seen in order over {report.face_frames} of "
            f"{report.frames} frames (dlib 5-point yaw/pitch)",
        )
    return ActiveLiveness(False, f"{CHALLENGE_NOT_MET}: {report.reason}")
