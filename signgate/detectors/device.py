"""Device check: small, named rules over the capturing app's device signals.

The app reports what it saw of the device in `CaptureMetadata.device_signals`, a flat dict.
Every key is optional; keys we do not know are ignored. The keys read here:

| key | type | meaning (browser source / native source) |
|---|---|---|
| `camera_label` | str | `MediaDeviceInfo.label` of the camera used / native camera name |
| `user_agent` | str | `navigator.userAgent` / SDK user agent |
| `webdriver` | bool | `navigator.webdriver` |
| `headless` | bool | the SDK's own headless-browser probe |
| `emulator` | bool | the native SDK's emulator probe |
| `device_model` | str | native device model (`Build.MODEL`, `utsname.machine`) |
| `platform` | str | `navigator.platform` / OS name |
| `touch_points` | int | `navigator.maxTouchPoints` |
| `timezone` | str | IANA zone, `Intl.DateTimeFormat().resolvedOptions().timeZone` |
| `locale` | str | BCP 47 tag, `navigator.language` (e.g. `de-DE`) |
| `claimed_country` | str | ISO 3166-1 alpha-2 country the person claims (e.g. from the ID) |
| `capture_duration_ms` | int | how long the liveness capture ran |
| `frames_captured` | int | frames the liveness capture recorded |

Booleans may also arrive as `"true"`/`"false"`/`1`/`0` (some SDKs stringify everything).

Rules (reason code -> attack hint, risk when it fires):

- `virtual_camera_label` -> `virtual_camera`, 0.80: the camera is a virtual or capture-tool
  device (OBS, ManyCam, Snap Camera, XSplit, v4l2loopback, DroidCam, "virtual", ...), the
  usual way an injected (deepfake or replayed) stream reaches a browser.
- `automated_browser` -> `automation`, 0.80: `webdriver`/`headless` set, or a headless or
  automation marker in the user agent (HeadlessChrome, PhantomJS, Puppeteer, Playwright...).
- `emulator_device` -> `emulator`, 0.60: the SDK says emulator, or an emulator marker in
  the device model / user agent / platform (sdk_gphone, Genymotion, BlueStacks...).
- `mobile_ua_without_touch` -> `emulator`, 0.30: a phone user agent with
  `touch_points == 0` (desktop device emulation or a spoofed user agent).
- `timezone_outside_claimed_country` -> `geo_mismatch`, 0.25 (0.40 when the locale's region
  disagrees too): a heuristic over a small table of countries -> plausible IANA zones.
  Travellers, expats and VPN users trip it, hence the low risk; a locale alone never fires
  (`en-US` is the default language of half the world's browsers). Countries outside the
  table are not judged.
- `capture_too_fast`, `too_few_frames`, `implausible_frame_rate` ->
  `capture_timing_anomaly`, 0.50 each: a liveness capture shorter than 1.5 s, with fewer
  than 15 frames, or above 120 frames/s. An active challenge (blink, turn) takes a person
  seconds, and phone front cameras top out at 60 fps, so these point at an injected,
  pre-rendered stream. Judged only when the round holds a liveness video: an image-only
  selfie may legitimately take one frame in 200 ms.

Scores (`risk_score` is 0..1 risk, as everywhere):

- risk_score = 1 - prod(1 - rule_risk) over the rules that fired: each fired rule is
  treated as independent evidence, the score grows with every rule and never exceeds 1,
  and one rule alone scores its own risk. No rule fired -> 0.0.
- confidence = 0.9 * (families observed / 5), where the families are camera, automation,
  emulator, geo and timing, and a family is observed when at least one of its inputs was
  present. Rules over client-reported signals are never certain, hence the 0.9 ceiling.
- No signals at all (or none this module reads): status `completed` (the check ran;
  nothing is broken), risk 0.5 (we know nothing either way, so neither clean nor an
  attack), confidence 0.0, reason and
  attack hint `no_device_signals`, so a policy can step up or review on it. It is never a
  clean pass: a client that strips its signals must not look like a clean device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from signgate.detectors.base import PROVIDER, Evidence, model_version
from signgate.models import ArtifactKind, CheckKind, CheckResult, CheckStatus

MODEL_VERSION = model_version("device-rules", "1", ())

NO_SIGNALS = "no_device_signals"
NO_SIGNALS_RISK = 0.5
MAX_CONFIDENCE = 0.9
SHOWN_VALUE_MAX_CHARS = 80

MIN_LIVENESS_DURATION_MS = 1_500
MIN_LIVENESS_FRAMES = 15
MAX_FRAMES_PER_SECOND = 120.0

Signal = str | int | float | bool


# --------------------------------------------------------------------------- marker tables

_VIRTUAL_CAMERA = re.compile(
    r"(\bobs\b|manycam|snap camera|xsplit|\bvirtual|v4l2loopback|dummy video device|droidcam"
    r"|iriun|epoccam|\bcamo\b|camtwist|splitcam|youcam|\bvcam\b|e2esoft|mmhmm|chromacam"
    r"|streamlabs|nvidia broadcast|fake_device|fake video)",
    re.IGNORECASE,
)
_AUTOMATION_UA = re.compile(
    r"(headlesschrome|phantomjs|puppeteer|playwright|selenium|slimerjs|nightmare|cypress)",
    re.IGNORECASE,
)
_EMULATOR = re.compile(
    r"(sdk_gphone|android sdk built for|google_sdk|\bemulator\b|genymotion|bluestacks"
    r"|noxplayer|\bgoldfish\b|\branchu\b|vbox86|generic_x86)",
    re.IGNORECASE,
)
_MOBILE_UA = re.compile(r"(iphone|android.*mobile|ipod)", re.IGNORECASE)

# Heuristic: countries -> IANA zones a resident's device plausibly reports. An entry ending
# in "/" is a prefix. Legacy aliases browsers still report are included (Asia/Calcutta).
# fmt: off
PLAUSIBLE_TIMEZONES: dict[str, tuple[str, ...]] = {
    "US": (
        "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
        "America/Los_Angeles", "America/Anchorage", "America/Juneau", "America/Adak",
        "America/Boise", "America/Detroit", "America/Indiana/", "America/Kentucky/",
        "America/North_Dakota/", "America/Menominee", "America/Sitka", "America/Nome",
        "Pacific/Honolulu", "US/",
    ),
    "CA": (
        "America/Toronto", "America/Vancouver", "America/Edmonton", "America/Winnipeg",
        "America/Halifax", "America/St_Johns", "America/Regina", "America/Moncton",
        "America/Whitehorse", "America/Yellowknife", "America/Iqaluit", "Canada/",
    ),
    "MX": ("America/Mexico_City", "America/Cancun", "America/Monterrey", "America/Tijuana",
           "America/Merida", "America/Chihuahua", "America/Hermosillo", "America/Mazatlan"),
    "BR": ("America/Sao_Paulo", "America/Manaus", "America/Bahia", "America/Fortaleza",
           "America/Recife", "America/Belem", "America/Cuiaba", "America/Porto_Velho",
           "America/Rio_Branco", "America/Noronha", "America/Campo_Grande", "Brazil/"),
    "AR": ("America/Argentina/", "America/Buenos_Aires"),
    "GB": ("Europe/London", "Europe/Belfast", "GB"),
    "IE": ("Europe/Dublin",),
    "FR": ("Europe/Paris",),
    "DE": ("Europe/Berlin", "Europe/Busingen"),
    "ES": ("Europe/Madrid", "Atlantic/Canary", "Africa/Ceuta"),
    "PT": ("Europe/Lisbon", "Atlantic/Madeira", "Atlantic/Azores"),
    "IT": ("Europe/Rome",),
    "NL": ("Europe/Amsterdam",),
    "BE": ("Europe/Brussels",),
    "CH": ("Europe/Zurich",),
    "AT": ("Europe/Vienna",),
    "PL": ("Europe/Warsaw",),
    "SE": ("Europe/Stockholm",),
    "NO": ("Europe/Oslo",),
    "DK": ("Europe/Copenhagen",),
    "FI": ("Europe/Helsinki",),
    "UA": ("Europe/Kyiv", "Europe/Kiev", "Europe/Uzhgorod", "Europe/Zaporozhye"),
    "TR": ("Europe/Istanbul", "Asia/Istanbul"),
    "IN": ("Asia/Kolkata", "Asia/Calcutta"),
    "CN": ("Asia/Shanghai", "Asia/Urumqi", "Asia/Chongqing", "Asia/Harbin", "PRC"),
    "JP": ("Asia/Tokyo", "Japan"),
    "KR": ("Asia/Seoul", "ROK"),
    "SG": ("Asia/Singapore", "Singapore"),
    "AE": ("Asia/Dubai",),
    "AU": ("Australia/",),
    "NZ": ("Pacific/Auckland", "Pacific/Chatham", "NZ"),
    "ZA": ("Africa/Johannesburg",),
    "NG": ("Africa/Lagos",),
}
# fmt: on


# --------------------------------------------------------------------------- signals


@dataclass(frozen=True)
class Signals:
    """Typed reads over the raw dict; a value of the wrong shape reads as absent."""

    raw: Mapping[str, Signal]
    has_liveness_video: bool = False

    def present(self, *keys: str) -> bool:
        return any(key in self.raw for key in keys)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, bool):
            return None
        text = str(value).strip()
        return text or None

    def flag(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"false", "0", "no"}:
            return False
        return None

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if isinstance(value, bool):
            return None
        try:
            number = float(value) if value is not None else None
        except ValueError:
            return None
        return number if number is not None and math.isfinite(number) else None


def show(value: object) -> str:
    """A signal value as it may appear in an explanation: quoted, at most ~80 characters."""
    text = str(value)
    if len(text) > SHOWN_VALUE_MAX_CHARS:
        text = text[: SHOWN_VALUE_MAX_CHARS - 3] + "..."
    return repr(text)


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Finding:
    risk: float
    explanation: str


@dataclass(frozen=True)
class Rule:
    """One named rule: `reason` code, the attack `hint` it raises, the family it belongs to."""

    reason: str
    hint: str
    family: str
    judge: Callable[[Signals], Finding | None]


def virtual_camera_label(signals: Signals) -> Finding | None:
    label = signals.text("camera_label")
    match = _VIRTUAL_CAMERA.search(label) if label else None
    if match is None:
        return None
    return Finding(0.80, f"camera_label {show(label)} names a virtual camera ({match[0]!r})")


def automated_browser(signals: Signals) -> Finding | None:
    seen = [key for key in ("webdriver", "headless") if signals.flag(key)]
    user_agent = signals.text("user_agent")
    match = _AUTOMATION_UA.search(user_agent) if user_agent else None
    if match is not None:
        seen.append(f"user_agent contains {match[0]!r}")
    if not seen:
        return None
    return Finding(0.80, "automated browser: " + ", ".join(seen))


def emulator_device(signals: Signals) -> Finding | None:
    seen = ["emulator flag"] if signals.flag("emulator") else []
    for key in ("device_model", "user_agent", "platform"):
        value = signals.text(key)
        match = _EMULATOR.search(value) if value else None
        if match is not None:
            seen.append(f"{key} contains {match[0]!r}")
    if not seen:
        return None
    return Finding(0.60, "emulator: " + ", ".join(seen))


def mobile_ua_without_touch(signals: Signals) -> Finding | None:
    user_agent = signals.text("user_agent")
    touch_points = signals.number("touch_points")
    if user_agent is None or touch_points != 0:
        return None
    match = _MOBILE_UA.search(user_agent)
    if match is None:
        return None
    return Finding(0.30, f"user_agent claims a phone ({match[0]!r}) but touch_points is 0")


def plausible_timezone(country: str, timezone: str) -> bool:
    allowed = PLAUSIBLE_TIMEZONES[country]
    return any(
        timezone.startswith(zone) if zone.endswith("/") else timezone == zone for zone in allowed
    )


def locale_region(locale: str) -> str | None:
    """`de-DE` -> `DE`, `en_GB.UTF-8` -> `GB`, `fr` -> None."""
    parts = re.split(r"[-_.]", locale)
    regions = [part.upper() for part in parts[1:] if len(part) == 2 and part.isalpha()]
    return regions[0] if regions else None


def timezone_outside_claimed_country(signals: Signals) -> Finding | None:
    country = (signals.text("claimed_country") or "").upper()
    timezone = signals.text("timezone")
    if country not in PLAUSIBLE_TIMEZONES or timezone is None:
        return None
    if plausible_timezone(country, timezone):
        return None
    explanation = f"timezone {show(timezone)} is not a usual zone for claimed country {country}"
    locale = signals.text("locale")
    region = locale_region(locale) if locale else None
    if region is not None and region != country:
        return Finding(0.40, f"{explanation}; locale {show(locale)} points elsewhere too")
    return Finding(0.25, explanation)


def capture_too_fast(signals: Signals) -> Finding | None:
    duration_ms = signals.number("capture_duration_ms")
    if duration_ms is None or duration_ms >= MIN_LIVENESS_DURATION_MS:
        return None
    return Finding(
        0.50,
        f"capture_duration_ms {duration_ms:g} < {MIN_LIVENESS_DURATION_MS}: "
        "too quick for a person to answer a liveness challenge",
    )


def too_few_frames(signals: Signals) -> Finding | None:
    frames = signals.number("frames_captured")
    if frames is None or frames >= MIN_LIVENESS_FRAMES:
        return None
    return Finding(0.50, f"frames_captured {frames:g} < {MIN_LIVENESS_FRAMES}")


def implausible_frame_rate(signals: Signals) -> Finding | None:
    frames = signals.number("frames_captured")
    duration_ms = signals.number("capture_duration_ms")
    if frames is None or duration_ms is None or duration_ms <= 0:
        return None
    fps = frames / (duration_ms / 1000)
    if fps <= MAX_FRAMES_PER_SECOND:
        return None
    return Finding(
        0.50,
        f"{frames:g} frames in {duration_ms:g} ms is {fps:.0f} fps > {MAX_FRAMES_PER_SECOND:g}",
    )


RULES: tuple[Rule, ...] = (
    Rule("virtual_camera_label", "virtual_camera", "camera", virtual_camera_label),
    Rule("automated_browser", "automation", "automation", automated_browser),
    Rule("emulator_device", "emulator", "emulator", emulator_device),
    Rule("mobile_ua_without_touch", "emulator", "emulator", mobile_ua_without_touch),
    Rule(
        "timezone_outside_claimed_country", "geo_mismatch", "geo", timezone_outside_claimed_country
    ),
    Rule("capture_too_fast", "capture_timing_anomaly", "timing", capture_too_fast),
    Rule("too_few_frames", "capture_timing_anomaly", "timing", too_few_frames),
    Rule("implausible_frame_rate", "capture_timing_anomaly", "timing", implausible_frame_rate),
)

# family -> the keys whose presence means the family was observed
FAMILY_KEYS: dict[str, tuple[str, ...]] = {
    "camera": ("camera_label",),
    "automation": ("webdriver", "headless", "user_agent"),
    "emulator": ("emulator", "device_model", "platform", "touch_points", "user_agent"),
    "geo": ("timezone", "claimed_country"),
    "timing": ("capture_duration_ms", "frames_captured"),
}


# --------------------------------------------------------------------------- the check


def combined_risk(risks: list[float]) -> float:
    """1 - prod(1 - r): independent evidence; grows with each rule, stays within 0..1."""
    return 1.0 - math.prod(1.0 - risk for risk in risks)


def observed_families(signals: Signals) -> list[str]:
    families = [family for family, keys in FAMILY_KEYS.items() if signals.present(*keys)]
    if "timing" in families and not signals.has_liveness_video:
        families.remove("timing")
    return families


def judged_rules(signals: Signals) -> list[Rule]:
    """Rules to evaluate; timing rules only when the round holds a liveness video."""
    return [r for r in RULES if r.family != "timing" or signals.has_liveness_video]


def check_device(evidence: Evidence) -> CheckResult:
    signals = Signals(
        raw=evidence.capture.device_signals,
        has_liveness_video=ArtifactKind.liveness_video in evidence.media,
    )
    families = observed_families(signals)
    if not families:
        return no_signals_result()
    fired = [(rule, finding) for rule in judged_rules(signals) if (finding := rule.judge(signals))]
    explanations = [f"{rule.reason}: {finding.explanation}" for rule, finding in fired]
    if not fired:
        explanations.append(f"no device rule fired (observed: {', '.join(families)})")
    return CheckResult(
        kind=CheckKind.device,
        status=CheckStatus.completed,
        risk_score=round(combined_risk([finding.risk for _, finding in fired]), 6),
        confidence=round(MAX_CONFIDENCE * len(families) / len(FAMILY_KEYS), 6),
        attack_hints=sorted({rule.hint for rule, _ in fired}),
        provider=PROVIDER,
        model_version=MODEL_VERSION,
        explanations=explanations,
    )


def no_signals_result() -> CheckResult:
    return CheckResult(
        kind=CheckKind.device,
        status=CheckStatus.completed,
        risk_score=NO_SIGNALS_RISK,
        confidence=0.0,
        attack_hints=[NO_SIGNALS],
        provider=PROVIDER,
        model_version=MODEL_VERSION,
        reason=NO_SIGNALS,
        explanations=[f"{NO_SIGNALS}: the capture carried no device signal this check reads"],
    )
