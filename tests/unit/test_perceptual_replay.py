"""Perceptual replay: a re-encoded, resized or trimmed copy of another session's photo is found.

The bona fide photo is scikit-image's `astronaut` (public domain, NASA); `coffee` and
`chelsea` stand in for other people's captures.
"""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from signgate.detectors.base import Evidence
from signgate.detectors.replay import (
    DEFAULT_MAX_DISTANCE,
    FLAG_REPLAYED_CAPTURE,
    ImageHashes,
    PerceptualIndex,
    SqlitePerceptualIndex,
    _as_int,
    _matches,
    check_replay,
    image_hashes,
)
from signgate.hashing import sha256_hex
from signgate.ledger import SqliteLedger
from signgate.models import ArtifactKind, CaptureMetadata
from signgate.signer import KeyRing, Signer

ORIGINAL_SESSION = "sess-original"
ATTACKER_SESSION = "sess-attacker"


def encode(image: Image.Image, fmt: str = "PNG", **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("RGB")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return photo(data.astronaut())


@pytest.fixture(scope="module")
def astronaut_jpeg(astronaut: Image.Image) -> bytes:
    return encode(astronaut, "JPEG", quality=92)


@pytest.fixture
def index(tmp_path: Path, astronaut_jpeg: bytes) -> PerceptualIndex:
    index = SqlitePerceptualIndex(tmp_path / "ledger.sqlite3")
    index.record(ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg)
    return index


def evidence(session_id: str, **media: bytes) -> Evidence:
    return Evidence(
        session_id=session_id,
        capture=CaptureMetadata(challenge_nonce="n"),
        media={ArtifactKind(kind): value for kind, value in media.items()},
    )


def crop_2_percent(image: Image.Image) -> Image.Image:
    width, height = image.size
    dx, dy = round(width * 0.01), round(height * 0.01)  # 1 % off each side: 2 % in all
    return image.crop((dx, dy, width - dx, height - dy))


def near_copies(astronaut: Image.Image) -> dict[str, bytes]:
    width, height = astronaut.size
    return {
        "jpeg_quality_55": encode(astronaut, "JPEG", quality=55),
        "png_lossless": encode(astronaut, "PNG"),
        "resized_to_93_percent": encode(
            astronaut.resize((round(width * 0.93), round(height * 0.93))), "JPEG", quality=85
        ),
        "cropped_2_percent": encode(crop_2_percent(astronaut), "JPEG", quality=85),
    }


# --------------------------------------------------------------------------- near copies


@pytest.mark.parametrize(
    "variant", ["jpeg_quality_55", "png_lossless", "resized_to_93_percent", "cropped_2_percent"]
)
def test_a_near_copy_from_another_session_is_found(
    index: PerceptualIndex, astronaut: Image.Image, astronaut_jpeg: bytes, variant: str
) -> None:
    copy = near_copies(astronaut)[variant]
    assert sha256_hex(copy) != sha256_hex(astronaut_jpeg)  # the bytes really differ
    matches = index.find_near(copy, exclude_session=ATTACKER_SESSION)
    assert [m.session_id for m in matches] == [ORIGINAL_SESSION]
    match = matches[0]
    assert not match.exact
    assert match.artifact_kind is ArtifactKind.selfie
    assert match.phash_distance is not None and match.phash_distance <= 6
    assert match.dhash_distance is not None and match.dhash_distance <= 6


def test_a_replayed_selfie_is_flagged_with_an_explanation(
    index: PerceptualIndex, astronaut: Image.Image
) -> None:
    replay = near_copies(astronaut)["cropped_2_percent"]
    findings = check_replay(evidence(ATTACKER_SESSION, selfie=replay), index)
    assert findings.flags == [FLAG_REPLAYED_CAPTURE]
    assert len(findings.explanations) == 1
    assert findings.explanations[0].startswith("selfie: near copy of selfie")
    assert ORIGINAL_SESSION in findings.explanations[0]


def test_the_same_session_is_not_its_own_replay(
    index: PerceptualIndex, astronaut: Image.Image, astronaut_jpeg: bytes
) -> None:
    for copy in [astronaut_jpeg, *near_copies(astronaut).values()]:
        assert index.find_near(copy, exclude_session=ORIGINAL_SESSION) == []
    findings = check_replay(evidence(ORIGINAL_SESSION, selfie=astronaut_jpeg), index)
    assert findings.flags == []


def test_a_round_recorded_from_its_findings_is_found_by_the_next_session(
    tmp_path: Path, astronaut: Image.Image, astronaut_jpeg: bytes
) -> None:
    """Sealing records the hashes `check_replay` already took (`findings.hashed`) in one
    transaction: a later session's near copy of that round's selfie is found."""
    index = SqlitePerceptualIndex(tmp_path / "ledger.sqlite3")
    first = check_replay(evidence(ORIGINAL_SESSION, selfie=astronaut_jpeg), index)
    assert first.flags == []
    assert [(kind, sha) for kind, sha, _ in first.hashed] == [
        (ArtifactKind.selfie, sha256_hex(astronaut_jpeg))
    ]
    index.record_round(ORIGINAL_SESSION, first.hashed)
    index.record_round(ORIGINAL_SESSION, first.hashed)  # a retried seal adds no row
    replay = near_copies(astronaut)["cropped_2_percent"]
    later = check_replay(evidence(ATTACKER_SESSION, selfie=replay), index)
    assert later.flags == [FLAG_REPLAYED_CAPTURE]
    assert [m.session_id for m in index.find_near(replay, ATTACKER_SESSION)] == [ORIGINAL_SESSION]


@pytest.mark.parametrize("other", ["coffee", "chelsea", "camera"])
def test_a_different_photo_is_not_a_match(index: PerceptualIndex, other: str) -> None:
    different = encode(photo(getattr(data, other)()), "JPEG", quality=90)
    assert index.find_near(different, exclude_session=ATTACKER_SESSION) == []
    findings = check_replay(evidence(ATTACKER_SESSION, selfie=different), index)
    assert findings.flags == []
    assert findings.explanations == []


def test_a_tight_threshold_rejects_what_the_default_accepts(
    index: PerceptualIndex, astronaut: Image.Image
) -> None:
    cropped = near_copies(astronaut)["cropped_2_percent"]
    matches = index.find_near(cropped, exclude_session=ATTACKER_SESSION)
    assert matches, "the default threshold finds the crop"
    loosest = max(matches[0].phash_distance or 0, matches[0].dhash_distance or 0)
    assert loosest > 0, "a 2 % crop must move at least one hash"
    assert index.find_near(cropped, ATTACKER_SESSION, max_distance=loosest - 1) == []


# --------------------------------------------------------------------------- exact copies


def test_an_exact_duplicate_always_matches_even_at_distance_zero(
    index: PerceptualIndex, astronaut_jpeg: bytes
) -> None:
    matches = index.find_near(astronaut_jpeg, ATTACKER_SESSION, max_distance=0)
    assert len(matches) == 1 and matches[0].exact
    findings = check_replay(evidence(ATTACKER_SESSION, id_front=astronaut_jpeg), index)
    assert findings.flags == [FLAG_REPLAYED_CAPTURE]
    assert findings.explanations[0].startswith("id_front: byte-identical to selfie")


def test_an_exact_duplicate_of_undecodable_bytes_still_matches(tmp_path: Path) -> None:
    index = SqlitePerceptualIndex(tmp_path / "ledger.sqlite3")
    garbage = b"\xff\xd8\xff\xe0 truncated jpeg header and nothing else"
    index.record(ORIGINAL_SESSION, ArtifactKind.id_back, sha256_hex(garbage), garbage)
    matches = index.find_near(garbage, exclude_session=ATTACKER_SESSION)
    assert [(m.exact, m.phash_distance) for m in matches] == [(True, None)]


# --------------------------------------------------------------------------- robustness


def test_undecodable_bytes_are_skipped_with_an_explanation(index: PerceptualIndex) -> None:
    findings = check_replay(
        evidence(ATTACKER_SESSION, selfie=b"not an image at all", id_front=b""), index
    )
    assert findings.flags == []
    assert findings.explanations == [
        "selfie: not a decodable image, perceptual check skipped (exact SHA-256 match only)",
        "id_front: not a decodable image, perceptual check skipped (exact SHA-256 match only)",
    ]


def test_non_image_artifacts_are_not_checked(index: PerceptualIndex, astronaut_jpeg: bytes) -> None:
    media = {"liveness_video": astronaut_jpeg, "device_signals": astronaut_jpeg}
    findings = check_replay(evidence(ATTACKER_SESSION, **media), index)
    assert findings.flags == [] and findings.explanations == []


def test_recording_twice_keeps_one_row(tmp_path: Path, astronaut_jpeg: bytes) -> None:
    path = tmp_path / "ledger.sqlite3"
    index = SqlitePerceptualIndex(path)
    for _ in range(2):
        index.record("sess-x", ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM perceptual_hashes").fetchone() == (1,)
    assert len(index.find_near(astronaut_jpeg, exclude_session="other")) == 1


def test_the_index_shares_the_ledger_file_and_the_ledger_still_verifies(
    tmp_path: Path, astronaut_jpeg: bytes
) -> None:
    path = tmp_path / "ledger.sqlite3"
    signer = Signer.load_or_create(tmp_path / "keys")
    ledger = SqliteLedger(path, signer)
    ledger.append(ORIGINAL_SESSION, "evidence_sealed", f"{ORIGINAL_SESSION}:sealed", {"r": 1})
    index = SqlitePerceptualIndex(path)
    index.record(ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg)
    reopened = SqlitePerceptualIndex(path)  # CREATE TABLE IF NOT EXISTS: reopening keeps the rows
    assert len(reopened.find_near(astronaut_jpeg, exclude_session=ATTACKER_SESSION)) == 1
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"ledger_entries", "perceptual_hashes"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    report = ledger.verify(KeyRing.from_pems([signer.public_key_pem()]))
    assert report.ok and report.entries_checked == 1


def test_hashes_of_the_reduced_image_keep_their_distances(
    astronaut: Image.Image, astronaut_jpeg: bytes
) -> None:
    """Hashes come from a <= 256 px copy (JPEG `draft`): re-encoded and resized copies,
    a full-HD upscale among them, stay within 2 bits; unrelated photos stay > 20 away."""
    reference = image_hashes(astronaut_jpeg)
    assert reference is not None
    copies = near_copies(astronaut)
    crop = copies.pop("cropped_2_percent")
    copies["full_hd_upscale"] = encode(astronaut.resize((1920, 1080)), "JPEG", quality=90)
    for name, copy in copies.items():
        hashes = image_hashes(copy)
        assert hashes is not None
        assert hashes.phash - reference.phash <= 2, name
        assert hashes.dhash - reference.dhash <= 2, name
    cropped = image_hashes(crop)
    assert cropped is not None
    assert cropped.phash - reference.phash <= DEFAULT_MAX_DISTANCE
    assert cropped.dhash - reference.dhash <= DEFAULT_MAX_DISTANCE
    for other in ("coffee", "chelsea", "camera", "rocket"):
        hashes = image_hashes(encode(photo(getattr(data, other)()), "JPEG", quality=90))
        assert hashes is not None
        assert hashes.phash - reference.phash > 20, other
        assert hashes.dhash - reference.dhash > 20, other


@given(
    st.lists(st.booleans(), min_size=64, max_size=64),
    st.lists(st.booleans(), min_size=64, max_size=64),
)
def test_the_integer_distance_is_imagehash_distance(a: list[bool], b: list[bool]) -> None:
    """The scan compares stored hex hashes as integers: the same bits as `ImageHash - ImageHash`."""
    first = imagehash.ImageHash(np.array(a).reshape(8, 8))
    second = imagehash.ImageHash(np.array(b).reshape(8, 8))
    stored = [("other", "selfie", "0" * 64, _as_int(str(second)), _as_int(str(second)))]
    found = _matches(stored, "f" * 64, ImageHashes(first, first), max_distance=64)
    assert [m.phash_distance for m in found] == [first - second]


# ------------------------------------------------------------- lookup without a full scan


def as_hashes(phash: int, dhash: int) -> ImageHashes:
    return ImageHashes(
        imagehash.hex_to_hash(f"{phash:016x}"), imagehash.hex_to_hash(f"{dhash:016x}")
    )


def flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def crowd(index: PerceptualIndex) -> PerceptualIndex:
    """3,000 stored images with random hashes: a check must not read them all."""
    rng = np.random.default_rng(7)
    for start in range(0, 3000, 500):
        index.record_round(
            f"crowd-{start}",
            [
                (ArtifactKind.selfie, f"{start + i:064x}", as_hashes(int(p), int(d)))
                for i, (p, d) in enumerate(rng.integers(0, 2**63, size=(500, 2)))
            ],
        )
    return index


@pytest.fixture(scope="module")
def crowded_index(tmp_path_factory: pytest.TempPathFactory) -> PerceptualIndex:
    return crowd(SqlitePerceptualIndex(tmp_path_factory.mktemp("crowded") / "ledger.sqlite3"))


# Any two hashes, and up to 6 bits flipped in each, wherever the bits are.
near_copy_cases = given(
    phash=st.integers(0, 2**64 - 1),
    dhash=st.integers(0, 2**64 - 1),
    phash_flips=st.lists(st.integers(0, 63), max_size=DEFAULT_MAX_DISTANCE, unique=True),
    dhash_flips=st.lists(st.integers(0, 63), max_size=DEFAULT_MAX_DISTANCE, unique=True),
)


def assert_found_like_a_full_scan(
    index: PerceptualIndex, phash: int, dhash: int, phash_flips: list[int], dhash_flips: list[int]
) -> None:
    """The lookup finds the stored image, and reports what reading every row would."""
    sha256 = f"{phash:016x}{dhash:016x}".rjust(64, "e")
    index.record_round(ORIGINAL_SESSION, [(ArtifactKind.selfie, sha256, as_hashes(phash, dhash))])
    query = as_hashes(flip(phash, phash_flips), flip(dhash, dhash_flips))
    found = index._find("f" * 64, query, ATTACKER_SESSION, DEFAULT_MAX_DISTANCE)
    assert sha256 in {m.sha256 for m in found}
    every_row = _matches(index._stored(ATTACKER_SESSION), "f" * 64, query, DEFAULT_MAX_DISTANCE)
    assert found == every_row


@near_copy_cases
def test_every_near_copy_is_found_through_the_bit_range_indexes(
    crowded_index: PerceptualIndex,
    phash: int,
    dhash: int,
    phash_flips: list[int],
    dhash_flips: list[int],
) -> None:
    assert_found_like_a_full_scan(crowded_index, phash, dhash, phash_flips, dhash_flips)


def test_a_lookup_reads_a_small_part_of_the_index(crowded_index: PerceptualIndex) -> None:
    """The candidates are the rows sharing one of the pHash's 7 bit ranges (about 7 in 512
    of random hashes), not every row: the cost of a check does not grow with every image
    ever seen."""
    total = len(crowded_index._stored(ATTACKER_SESSION))
    query = as_hashes(0x0123456789ABCDEF, 0xFEDCBA9876543210)
    candidates = crowded_index._candidates(ATTACKER_SESSION, "f" * 64, query, DEFAULT_MAX_DISTANCE)
    assert total >= 3000
    assert len(candidates) < total / 20


def test_a_wider_threshold_than_the_ranges_allow_reads_every_row(
    crowded_index: PerceptualIndex,
) -> None:
    query = as_hashes(0x0123456789ABCDEF, 0xFEDCBA9876543210)
    wide = crowded_index._candidates(ATTACKER_SESSION, "f" * 64, query, max_distance=7)
    assert len(wide) == len(crowded_index._stored(ATTACKER_SESSION))


def test_an_index_written_before_the_bit_ranges_gets_them_on_open(
    tmp_path: Path, astronaut: Image.Image, astronaut_jpeg: bytes
) -> None:
    path = tmp_path / "ledger.sqlite3"
    hashes = image_hashes(astronaut_jpeg)
    assert hashes is not None
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            """CREATE TABLE perceptual_hashes (
                session_id TEXT NOT NULL, artifact_kind TEXT NOT NULL, sha256 TEXT NOT NULL,
                phash TEXT, dhash TEXT, created_at TEXT NOT NULL,
                UNIQUE (session_id, artifact_kind, sha256))"""
        )
        conn.execute(
            "INSERT INTO perceptual_hashes VALUES (?, 'selfie', ?, ?, ?, '2026-11-01T00:00:00')",
            (ORIGINAL_SESSION, sha256_hex(astronaut_jpeg), str(hashes.phash), str(hashes.dhash)),
        )
    index = SqlitePerceptualIndex(path)
    SqlitePerceptualIndex(path)  # opening again changes nothing
    matches = index.find_near(near_copies(astronaut)["jpeg_quality_55"], ATTACKER_SESSION)
    assert [m.session_id for m in matches] == [ORIGINAL_SESSION]
    assert not matches[0].exact
