"""The console's signed tokens (login cookie, media links) and key-frame extraction."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.console.frames import MAX_FRAMES, FrameCache, key_frames
from gateway.console.signing import TokenRefused, TokenSigner

SECRET = b"0123456789abcdef-console-test"
NOW = 1_800_000_000


def test_a_token_verifies_with_its_claims_until_it_expires() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("media", 120, {"sid": "s1", "sha": "ab" * 32}, now=NOW)
    claims = signer.verify("media", token, now=NOW + 119)
    assert (claims["sid"], claims["sha"], claims["exp"]) == ("s1", "ab" * 32, NOW + 120)
    with pytest.raises(TokenRefused) as refused:
        signer.verify("media", token, now=NOW + 120)
    assert refused.value.reason == "console_token_expired"
    assert refused.value.http_status == 403


@pytest.mark.parametrize("where", ["claims", "mac"])
def test_a_changed_byte_is_refused(where: str) -> None:
    signer = TokenSigner(SECRET)
    body, mac = signer.sign("media", 120, {"sid": "s1", "sha": "ab" * 32}, now=NOW).split(".")
    if where == "claims":
        forged_claims = TokenSigner(SECRET).sign("media", 120, {"sid": "s2", "sha": "ab" * 32})
        body = forged_claims.split(".")[0]  # another session's claims under this MAC
    else:
        mac = ("A" if mac[0] != "A" else "B") + mac[1:]
    with pytest.raises(TokenRefused) as refused:
        signer.verify("media", f"{body}.{mac}", now=NOW)
    assert refused.value.reason == "console_token_invalid"


def test_a_token_from_another_secret_or_for_another_use_is_refused() -> None:
    token = TokenSigner(b"another-secret-of-16-bytes").sign("media", 120, {}, now=NOW)
    with pytest.raises(TokenRefused):
        TokenSigner(SECRET).verify("media", token, now=NOW)
    login = TokenSigner(SECRET).sign("login", 3600, {"sub": "rev-alice"}, now=NOW)
    with pytest.raises(TokenRefused):
        TokenSigner(SECRET).verify("media", login, now=NOW)
    for garbage in ("", ".", "abc", "a.b.c"):
        with pytest.raises(TokenRefused):
            TokenSigner(SECRET).verify("login", garbage, now=NOW)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short")


def write_video(
    path: Path, frames: int, size: tuple[int, int] = (640, 480), codec: str = "MJPG"
) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10.0, size)
    assert writer.isOpened()
    for index in range(frames):
        frame = np.full((size[1], size[0], 3), index * 255 // max(1, frames - 1), np.uint8)
        writer.write(frame)
    writer.release()


def test_key_frames_are_few_small_evenly_spaced_jpegs(tmp_path: Path) -> None:
    video = tmp_path / "live.avi"
    write_video(video, frames=40)
    stills = key_frames(video)
    assert len(stills) == MAX_FRAMES
    decoded = [cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_COLOR) for s in stills]
    assert all(s[:3] == b"\xff\xd8\xff" for s in stills)
    assert all(max(d.shape[:2]) <= 360 for d in decoded)
    brightness = [float(d.mean()) for d in decoded]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 150


def test_something_that_is_not_a_video_yields_no_frames(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a video at all" * 100)
    assert key_frames(junk) == []


def test_the_frame_cache_is_bounded(tmp_path: Path) -> None:
    video = tmp_path / "live.avi"
    write_video(video, frames=8, size=(64, 48))
    cache = FrameCache(entries=2)
    for name in ("a", "b", "c"):
        assert len(cache.get(name, lambda: key_frames(video), lambda: True)) == MAX_FRAMES
    assert list(cache._frames) == ["b", "c"]
