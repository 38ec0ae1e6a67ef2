"""Device rules: each fires on its own signal, stays silent on clean real-world profiles."""

from __future__ import annotations

import pytest

from signgate.detectors.base import Evidence
from signgate.detectors.device import (
    NO_SIGNALS,
    PLAUSIBLE_TIMEZONES,
    SHOWN_VALUE_MAX_CHARS,
    check_device,
    combined_risk,
)
from signgate.models import ArtifactKind, CaptureMetadata, CheckKind, CheckResult, CheckStatus

Signals = dict[str, str | int | float | bool]

CHROME_ON_WINDOWS: Signals = {
    "camera_label": "Integrated Webcam (0c45:6a09)",
    "user_agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/131.0.0.0 Safari/537.36"
    ),
    "webdriver": False,
    "platform": "Win32",
    "touch_points": 0,
    "timezone": "Europe/Berlin",
    "locale": "de-DE",
    "claimed_country": "DE",
    "capture_duration_ms": 4200,
    "frames_captured": 126,
}

SAFARI_ON_IPHONE: Signals = {
    "camera_label": "Front Camera",
    "user_agent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
    ),
    "webdriver": False,
    "platform": "iPhone",
    "touch_points": 5,
    "timezone": "America/New_York",
    "locale": "en-US",
    "claimed_country": "US",
    "capture_duration_ms": 3100,
    "frames_captured": 90,
}

CLEAN_PROFILES = {"chrome_on_windows": CHROME_ON_WINDOWS, "safari_on_iphone": SAFARI_ON_IPHONE}


def run(signals: Signals, *, liveness_video: bool = True) -> CheckResult:
    media = {ArtifactKind.selfie: b"selfie bytes"}
    if liveness_video:
        media[ArtifactKind.liveness_video] = b"video bytes"
    capture = CaptureMetadata(challenge_nonce="n", device_signals=signals)
    return check_device(Evidence(session_id="sess-device", capture=capture, media=media))


def fired_reasons(result: CheckResult) -> set[str]:
    return {line.split(":", 1)[0] for line in result.explanations}


def with_signals(base: Signals, **changes: str | int | float | bool) -> Signals:
    return {**base, **changes}


# --------------------------------------------------------------------------- clean profiles


@pytest.mark.parametrize("profile", CLEAN_PROFILES.values(), ids=CLEAN_PROFILES.keys())
def test_clean_real_world_profile_passes_with_low_risk(profile: Signals) -> None:
    result = run(profile)
    assert result.kind is CheckKind.device
    assert result.status is CheckStatus.completed
    assert result.provider == "local"
    assert result.model_version == "device-rules/1"
    assert result.risk_score == 0.0
    assert result.attack_hints == []
    assert result.confidence is not None and result.confidence >= 0.8
    assert result.explanations[0].startswith("no device rule fired")


# --------------------------------------------------------------------------- each rule fires


RULE_CASES: dict[str, tuple[Signals, str, str]] = {
    # case: (signals, hint, reason code)
    "obs_virtual_camera": (
        with_signals(CHROME_ON_WINDOWS, camera_label="OBS Virtual Camera"),
        "virtual_camera",
        "virtual_camera_label",
    ),
    "manycam": (
        with_signals(CHROME_ON_WINDOWS, camera_label="ManyCam Virtual Webcam"),
        "virtual_camera",
        "virtual_camera_label",
    ),
    "v4l2loopback_dummy_device": (
        with_signals(CHROME_ON_WINDOWS, camera_label="Dummy video device (0x0000)"),
        "virtual_camera",
        "virtual_camera_label",
    ),
    "droidcam": (
        with_signals(CHROME_ON_WINDOWS, camera_label="DroidCam Source 3"),
        "virtual_camera",
        "virtual_camera_label",
    ),
    "chrome_fake_device": (
        with_signals(CHROME_ON_WINDOWS, camera_label="fake_device_0"),
        "virtual_camera",
        "virtual_camera_label",
    ),
    "webdriver_flag": (
        with_signals(CHROME_ON_WINDOWS, webdriver=True),
        "automation",
        "automated_browser",
    ),
    "webdriver_flag_as_string": (
        with_signals(CHROME_ON_WINDOWS, webdriver="true"),
        "automation",
        "automated_browser",
    ),
    "headless_chrome_ua": (
        with_signals(
            CHROME_ON_WINDOWS,
            user_agent=str(CHROME_ON_WINDOWS["user_agent"]).replace("Chrome/", "HeadlessChrome/"),
        ),
        "automation",
        "automated_browser",
    ),
    "phantomjs_ua": (
        with_signals(
            CHROME_ON_WINDOWS,
            user_agent="Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 PhantomJS/2.1.1",
        ),
        "automation",
        "automated_browser",
    ),
    "emulator_flag": (
        with_signals(SAFARI_ON_IPHONE, emulator=True),
        "emulator",
        "emulator_device",
    ),
    "android_emulator_model": (
        with_signals(SAFARI_ON_IPHONE, device_model="sdk_gphone64_x86_64"),
        "emulator",
        "emulator_device",
    ),
    "phone_ua_without_touch": (
        with_signals(SAFARI_ON_IPHONE, touch_points=0),
        "emulator",
        "mobile_ua_without_touch",
    ),
    "timezone_outside_claimed_country": (
        with_signals(CHROME_ON_WINDOWS, timezone="Asia/Shanghai"),
        "geo_mismatch",
        "timezone_outside_claimed_country",
    ),
    "utc_timezone_for_a_german_claim": (
        with_signals(CHROME_ON_WINDOWS, timezone="UTC"),
        "geo_mismatch",
        "timezone_outside_claimed_country",
    ),
    "liveness_capture_too_fast": (
        with_signals(CHROME_ON_WINDOWS, capture_duration_ms=600, frames_captured=20),
        "capture_timing_anomaly",
        "capture_too_fast",
    ),
    "liveness_capture_too_few_frames": (
        with_signals(CHROME_ON_WINDOWS, frames_captured=4),
        "capture_timing_anomaly",
        "too_few_frames",
    ),
    "liveness_capture_impossible_frame_rate": (
        with_signals(CHROME_ON_WINDOWS, capture_duration_ms=2000, frames_captured=600),
        "capture_timing_anomaly",
        "implausible_frame_rate",
    ),
}


@pytest.mark.parametrize(("signals", "hint", "reason"), RULE_CASES.values(), ids=RULE_CASES.keys())
def test_each_rule_fires_on_its_signal_with_its_hint(
    signals: Signals, hint: str, reason: str
) -> None:
    result = run(signals)
    assert result.status is CheckStatus.completed
    assert hint in result.attack_hints
    assert reason in fired_reasons(result)
    assert result.risk_score is not None and result.risk_score > 0.2


def test_virtual_camera_alone_scores_high_enough_to_cap_at_review() -> None:
    result = run(with_signals(CHROME_ON_WINDOWS, camera_label="OBS Virtual Camera"))
    assert result.risk_score is not None and result.risk_score >= 0.8
    assert result.attack_hints == ["virtual_camera"]


def test_explanation_names_the_rule_and_the_signal_value() -> None:
    result = run(with_signals(CHROME_ON_WINDOWS, camera_label="OBS Virtual Camera"))
    assert result.explanations == [
        "virtual_camera_label: camera_label 'OBS Virtual Camera' names a virtual camera ('OBS')"
    ]


def test_a_long_user_agent_is_never_echoed_whole() -> None:
    long_ua = "HeadlessChrome/131.0 " + "x" * 300
    result = run(with_signals(CHROME_ON_WINDOWS, user_agent=long_ua))
    assert "automated_browser" in fired_reasons(result)
    assert all(long_ua not in line for line in result.explanations)
    assert all(len(line) < 2 * SHOWN_VALUE_MAX_CHARS for line in result.explanations)


def test_a_long_camera_label_is_shortened_in_the_explanation() -> None:
    label = "Virtual " + "camera " * 40
    result = run(with_signals(CHROME_ON_WINDOWS, camera_label=label))
    assert all(label not in line for line in result.explanations)
    assert any("..." in line for line in result.explanations)


# ---------------------------------------------------------------- rules that must not fire


def test_ordinary_webcam_names_are_not_virtual_cameras() -> None:
    for label in ("HD Pro Webcam C920 (046d:082d)", "FaceTime HD Camera", "Jobs camera"):
        result = run(with_signals(CHROME_ON_WINDOWS, camera_label=label))
        assert "virtual_camera" not in result.attack_hints, label


def test_a_locale_from_another_country_alone_is_not_a_geo_mismatch() -> None:
    result = run(with_signals(CHROME_ON_WINDOWS, locale="en-US"))
    assert result.risk_score == 0.0


def test_a_locale_that_also_disagrees_raises_the_geo_risk() -> None:
    zone_only = run(with_signals(CHROME_ON_WINDOWS, timezone="Asia/Shanghai"))
    zone_and_locale = run(with_signals(CHROME_ON_WINDOWS, timezone="Asia/Shanghai", locale="zh-CN"))
    assert zone_only.risk_score is not None and zone_and_locale.risk_score is not None
    assert zone_and_locale.risk_score > zone_only.risk_score


def test_a_country_outside_the_timezone_table_is_not_judged() -> None:
    assert "XK" not in PLAUSIBLE_TIMEZONES
    result = run(with_signals(CHROME_ON_WINDOWS, claimed_country="XK", timezone="Asia/Tokyo"))
    assert "geo_mismatch" not in result.attack_hints


def test_every_us_zone_form_browsers_report_is_plausible_for_the_us() -> None:
    for zone in ("America/Los_Angeles", "America/Indiana/Indianapolis", "Pacific/Honolulu"):
        result = run(with_signals(SAFARI_ON_IPHONE, timezone=zone))
        assert "geo_mismatch" not in result.attack_hints, zone


def test_timing_rules_wait_for_a_liveness_video() -> None:
    quick_selfie = with_signals(CHROME_ON_WINDOWS, capture_duration_ms=200, frames_captured=1)
    assert "capture_timing_anomaly" in run(quick_selfie).attack_hints
    assert run(quick_selfie, liveness_video=False).attack_hints == []


# --------------------------------------------------------------------------- combining


def test_combined_risk_grows_with_every_rule_that_fires() -> None:
    steps: list[Signals] = [
        CHROME_ON_WINDOWS,
        with_signals(CHROME_ON_WINDOWS, timezone="Asia/Shanghai"),
        with_signals(CHROME_ON_WINDOWS, timezone="Asia/Shanghai", frames_captured=4),
        with_signals(
            CHROME_ON_WINDOWS, timezone="Asia/Shanghai", frames_captured=4, webdriver=True
        ),
        with_signals(
            CHROME_ON_WINDOWS,
            timezone="Asia/Shanghai",
            frames_captured=4,
            webdriver=True,
            camera_label="OBS Virtual Camera",
        ),
    ]
    risks = [run(signals).risk_score or 0.0 for signals in steps]
    assert risks[0] == 0.0
    assert all(lower < higher for lower, higher in zip(risks, risks[1:], strict=False)), risks
    assert risks[-1] < 1.0


def test_combined_risk_is_one_minus_the_product_of_the_misses() -> None:
    assert combined_risk([]) == 0.0
    assert combined_risk([0.8]) == pytest.approx(0.8)
    assert combined_risk([0.5, 0.5]) == pytest.approx(0.75)
    assert combined_risk([0.8, 0.25, 0.5]) == pytest.approx(1 - 0.2 * 0.75 * 0.5)


def test_fewer_signals_mean_lower_confidence() -> None:
    full = run(CHROME_ON_WINDOWS)
    camera_only = run({"camera_label": "Integrated Webcam"})
    assert full.confidence is not None and camera_only.confidence is not None
    assert 0.0 < camera_only.confidence < full.confidence


# --------------------------------------------------------------------------- no signals


@pytest.mark.parametrize("signals", [{}, {"unknown_key": "x"}], ids=["empty", "only_unknown_keys"])
def test_no_device_signals_is_never_a_clean_pass(signals: Signals) -> None:
    result = run(signals)
    assert result.status is CheckStatus.completed
    assert result.reason == NO_SIGNALS
    assert result.attack_hints == [NO_SIGNALS]
    assert result.risk_score == 0.5
    assert result.confidence == 0.0
    assert result.explanations and result.explanations[0].startswith(NO_SIGNALS)
