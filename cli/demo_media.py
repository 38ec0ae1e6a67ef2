"""Capture media for the demo that the local detectors can honestly judge.

Nothing offline ships distinct real faces at a decent resolution except scikit-image's
public-domain `astronaut`, so each demo scenario gets its own *framing* of that photo (a
different crop, mirror and scale): visibly distinct pictures whose perceptual hashes are
far apart (more than the replay index's 6 bits), so three sessions of one run are not
replays of each other. A second run on the same data would be a replay, and the replay
check rightly says so; that is why `signgate demo` starts each run on a fresh data
directory (see `cli/demo_run.py`). The scenarios, as the local detectors see them:

- `bona_fide`: a camera-like JPEG selfie, an ID photo of the same face, a liveness clip
  making the session's motion challenge, clean device signals -> every check passes, the
  policy accepts.
- `deepfake`: the selfie carries a generator's upsampling grid (`attacks.generator_upsample`),
  which the forensics detector reads as synthetic media -> rejected.
- `borderline`: a clean capture whose app sent no device signals; the device check knows
  nothing either way (`no_device_signals`), so the policy sends it to a person.

The liveness clip is built from the selfie still (`signgate.evaluation.clips`: a warp
that moves the nose against the eyes), since no real face video ships offline. The sandbox
vendor ignores the media and reads the `scenario` field instead, so the same
captures drive the demo under either provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from skimage import data as skdata

from signgate.attacks import generator_upsample, jpeg_bytes
from signgate.evaluation.clips import clip_frames, encode_clip
from signgate.models import ArtifactKind

# (x0, y0, x1, y1) crop of the 512x512 astronaut, mirrored or not, output side in px.
Framing = tuple[tuple[int, int, int, int], bool, int]

FRAMINGS: dict[str, dict[ArtifactKind, Framing]] = {
    "bona_fide": {
        ArtifactKind.selfie: ((40, 0, 440, 400), False, 640),
        ArtifactKind.id_front: ((100, 10, 340, 250), False, 320),
    },
    "deepfake": {
        ArtifactKind.selfie: ((0, 0, 512, 512), True, 640),
        ArtifactKind.id_front: ((110, 0, 370, 300), True, 320),
    },
    "borderline": {
        ArtifactKind.selfie: ((80, 0, 400, 480), True, 640),
        ArtifactKind.id_front: ((60, 30, 360, 270), False, 360),
    },
}

# What a plain, unautomated desktop browser with a real webcam reports.
CLEAN_DEVICE_SIGNALS: dict[str, str | int | float | bool] = {
    "camera_label": "FaceTime HD Camera",
    "webdriver": False,
    "headless": False,
    "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "platform": "MacIntel",
    "timezone": "Europe/Berlin",
    "claimed_country": "DE",
}


CLIP_SIDE = 480
CONTENT_TYPES = {ArtifactKind.liveness_video: "video/mp4"}


@dataclass(frozen=True)
class DemoCapture:
    media: dict[ArtifactKind, bytes]
    device_signals: dict[str, str | int | float | bool] = field(default_factory=dict)

    def content_type(self, kind: ArtifactKind) -> str:
        return CONTENT_TYPES.get(kind, "image/jpeg")


def framed(rgb: np.ndarray, framing: Framing) -> np.ndarray:
    import cv2

    (x0, y0, x1, y1), mirror, side = framing
    crop = rgb[y0:y1, x0:x1]
    if mirror:
        crop = crop[:, ::-1]
    h, w = crop.shape[:2]
    scale = side / max(h, w)
    size = (round(w * scale), round(h * scale))
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC))


def demo_capture(scenario: str, motion_challenge: Sequence[str] = ()) -> DemoCapture:
    """The selfie, ID front, liveness clip (when a challenge was asked) and device signals
    of one demo scenario."""
    astronaut = np.asarray(skdata.astronaut(), dtype=np.uint8)
    frames = FRAMINGS[scenario]
    still = framed(astronaut, frames[ArtifactKind.selfie])
    selfie = generator_upsample(still) if scenario == "deepfake" else still
    media = {
        ArtifactKind.selfie: jpeg_bytes(selfie, 92),
        ArtifactKind.id_front: jpeg_bytes(framed(astronaut, frames[ArtifactKind.id_front]), 90),
    }
    if motion_challenge:
        clip_still = framed(still, ((0, 0, still.shape[1], still.shape[0]), False, CLIP_SIDE))
        media[ArtifactKind.liveness_video] = encode_clip(clip_frames(clip_still, motion_challenge))
    signals = {} if scenario == "borderline" else dict(CLEAN_DEVICE_SIGNALS)
    return DemoCapture(media=media, device_signals=signals)
