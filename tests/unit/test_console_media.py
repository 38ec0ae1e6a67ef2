"""The console's key-frame cache never outlives erasure, and a hit costs no decryption.

A real local evidence store with real per-session data keys; the only addition is a count
of the reads that decrypt a whole object.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from gateway.console.frames import MAX_FRAMES, FrameCache
from gateway.console.media import video_frames
from signgate.envelope import EvidenceErased, default_data_keys
from signgate.evidence import EvidenceMissing, LocalEvidenceStore
from signgate.models import ArtifactKind
from tests.unit.test_console_tokens import write_video

SESSION = "session-frames-1"


class CountingStore(LocalEvidenceStore):
    """The local store, counting `open` calls (each one reads and decrypts the object)."""

    opened = 0

    def open(self, object_key: str) -> BinaryIO:
        self.opened += 1
        return super().open(object_key)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "evidence", default_data_keys(tmp_path / "keys"))


@pytest.fixture
def video_key(store: CountingStore, tmp_path: Path) -> str:
    video = tmp_path / "live.avi"
    write_video(video, frames=8, size=(64, 48))
    ref = store.put_bytes(
        ArtifactKind.liveness_video, video.read_bytes(), "video/x-msvideo", session_id=SESSION
    )
    return ref.object_key


def test_cached_frames_are_served_without_decrypting_the_video_again(
    store: CountingStore, video_key: str
) -> None:
    cache = FrameCache()
    first = video_frames(store, cache, video_key)
    assert len(first) == MAX_FRAMES and store.opened == 1
    assert video_frames(store, cache, video_key) == first
    assert store.opened == 1


def test_an_erased_sessions_frames_are_refused_even_when_cached(
    store: CountingStore, video_key: str
) -> None:
    cache = FrameCache()
    assert video_frames(store, cache, video_key)
    assert store.data_keys is not None
    store.data_keys.erase(SESSION, "subject request")
    with pytest.raises(EvidenceErased):
        video_frames(store, cache, video_key)
    assert video_key not in cache._frames  # the plaintext frames leave memory too
    with pytest.raises(EvidenceErased):
        video_frames(store, cache, video_key)


def test_a_vanished_objects_frames_are_refused_even_when_cached(
    store: CountingStore, video_key: str
) -> None:
    cache = FrameCache()
    assert video_frames(store, cache, video_key)
    digest = video_key.rsplit("/", 1)[1]
    (store.root / "objects" / "sessions" / SESSION / digest).unlink()
    with pytest.raises(EvidenceMissing):
        video_frames(store, cache, video_key)
    assert video_key not in cache._frames
