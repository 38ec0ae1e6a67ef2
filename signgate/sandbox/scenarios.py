"""The sandbox's test cards: each scenario name fixes how the sandbox answers every check.

Risk scores are 0..1 RISK (1 = attack). A scenario that names no result for a check answers
it like `bona_fide`, so each table lists only what that scenario is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from signgate.models import CheckKind
from signgate.vendor_api import VendorCheckPayload

MODEL_VERSION = "sandbox-1.0"


class Answer(StrEnum):
    """How the sandbox answers `POST /v1/checks`."""

    completed = "completed"  # 200 with the result
    webhook = "webhook"  # 202 pending, the result by webhook after `webhook_delay_s`
    never = "never"  # 202 pending, no webhook ever
    down = "down"  # 503
    garbage = "garbage"  # 200 text/html nonsense
    garbage_json = "garbage_json"  # 200 application/json that is not JSON
    wrong_content_type = "wrong_content_type"  # 200, a valid result labelled text/plain
    hang = "hang"  # answers only after `hang_s` (longer than any sane client timeout)
    flaky = "flaky"  # 503 to the first attempt per check reference, then `completed`


def result(
    check: CheckKind,
    risk: float,
    confidence: float = 0.95,
    hints: tuple[str, ...] = (),
    explanations: tuple[str, ...] = (),
) -> VendorCheckPayload:
    return VendorCheckPayload(
        check=check,
        risk_score=risk,
        confidence=confidence,
        attack_hints=list(hints),
        model_version=MODEL_VERSION,
        explanations=list(explanations),
    )


BONA_FIDE: dict[CheckKind, VendorCheckPayload] = {
    CheckKind.liveness: result(CheckKind.liveness, 0.03),
    CheckKind.deepfake: result(CheckKind.deepfake, 0.04),
    CheckKind.face_match: result(CheckKind.face_match, 0.05),
    CheckKind.device: result(CheckKind.device, 0.02),
    CheckKind.provenance: result(CheckKind.provenance, 0.06),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    answer: Answer
    overrides: dict[CheckKind, VendorCheckPayload] = field(default_factory=dict)

    def result_for(self, check: CheckKind) -> VendorCheckPayload:
        return self.overrides.get(check, BONA_FIDE[check])


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("bona_fide", Answer.completed),
        Scenario(
            "deepfake",
            Answer.completed,
            {
                CheckKind.deepfake: result(
                    CheckKind.deepfake,
                    0.97,
                    0.97,
                    hints=("synthetic",),
                    explanations=("face texture and blending artefacts typical of face swaps",),
                ),
                CheckKind.liveness: result(CheckKind.liveness, 0.35, 0.85),
            },
        ),
        # Weighted 0.45/0.35/0.15/0.05 over liveness/deepfake/face_match/device: ~0.43.
        Scenario(
            "borderline",
            Answer.completed,
            {
                CheckKind.liveness: result(CheckKind.liveness, 0.45, 0.75),
                CheckKind.deepfake: result(CheckKind.deepfake, 0.40, 0.75),
                CheckKind.face_match: result(CheckKind.face_match, 0.50, 0.75),
                CheckKind.device: result(CheckKind.device, 0.30, 0.80),
                CheckKind.provenance: result(CheckKind.provenance, 0.20, 0.80),
            },
        ),
        Scenario(
            "poor_capture",
            Answer.completed,
            {
                CheckKind.liveness: result(
                    CheckKind.liveness,
                    0.5,
                    0.6,
                    hints=("capture_quality",),
                    explanations=(
                        "face too dark and blurred to judge liveness; retry facing a light "
                        "source, face centred and filling the frame, camera held still",
                    ),
                ),
            },
        ),
        Scenario(
            "virtual_camera",
            Answer.completed,
            {
                CheckKind.device: result(
                    CheckKind.device,
                    0.95,
                    hints=("virtual_camera",),
                    explanations=("video came from a virtual camera driver, not a sensor",),
                ),
            },
        ),
        # Strong liveness and a strong match, but the deepfake detector is nervous (no
        # high-confidence synthetic flag): a red-tier review, four eyes to override.
        Scenario(
            "live_but_deepfake_suspect",
            Answer.completed,
            {
                CheckKind.deepfake: result(
                    CheckKind.deepfake,
                    0.75,
                    0.7,
                    explanations=("blending artefacts along the jaw line",),
                ),
            },
        ),
        Scenario("slow_webhook", Answer.webhook),
        Scenario("no_webhook", Answer.never),
        Scenario("vendor_down", Answer.down),
        Scenario("garbage", Answer.garbage),
        # Faults for the chaos run (`chaos/`): each looks like a vendor misbehaving.
        Scenario("garbage_json", Answer.garbage_json),
        Scenario("wrong_content_type", Answer.wrong_content_type),
        Scenario("vendor_hangs", Answer.hang),
        Scenario("flaky_vendor", Answer.flaky),
    ]
}

DEFAULT_SCENARIO = "bona_fide"
