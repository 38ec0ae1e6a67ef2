"""Perceptual replay detection: is this capture a near copy of another session's image?

Sealing already flags a byte-identical capture claimed by two sessions. A replay attacker
re-encodes, resizes or trims the stolen photo so the bytes (and the SHA-256) change; the
picture does not. This module keeps two perceptual hashes of every image artifact (selfie,
id_front, id_back) and finds earlier images from *other* sessions whose hashes are close.

Matching (`find_near`): a stored image matches when its SHA-256 equals the query's (always,
even if the bytes are not a decodable image), or when BOTH the pHash (DCT of a 32x32
grey thumbnail) and the dHash (horizontal gradients of a 9x8 thumbnail) of `imagehash`
are within `max_distance` bits of the query's (64-bit hashes; Hamming distance, <=).
Requiring both keeps the false-match rate down, because the two hashes fail on different
images. The default 6 of 64 bits: on the public-domain astronaut photo, JPEG re-encoding
(q 50..90), resizing by +-10 % and a 2 % crop stay within 0..6 bits, while unrelated
photos (coffee, chelsea, camera, rocket) are 25..36 bits away. Images are EXIF-transposed
before hashing, so a rotation tag does not hide a copy. Both hashes are taken from a copy at
most HASH_SIDE px on its longest side (a JPEG is decoded at 1/2..1/8 scale with `draft`,
straight to greyscale, then thumbnailed): pHash reads a 32x32 and dHash a 9x8 thumbnail,
so the full-size decode bought nothing but time.

Storage: the table `perceptual_hashes` lives beside the ledger (in its SQLite file, or in
its PostgreSQL schema: `replay_postgres`) but is not part of it: the ledger's append-only
triggers guard `ledger_entries` only. Every SQLite call opens its own connection (WAL,
busy_timeout), so one index is safe to share between threads and processes. `record` is
idempotent per (session, kind, sha256), so a retried activity does not duplicate rows.

Lookup does not read every image ever seen. Each pHash is also stored as PHASH_CHUNKS
(7) disjoint bit ranges, one indexed column each: two hashes within 6 bits of each other
differ in at most 6 of the 7 ranges, so they agree on one of them exactly (pigeonhole,
"multi-index hashing"). A check asks SQLite for the rows that share its SHA-256 or any
one range (7 index lookups), then compares those few exactly, each hash as a 64-bit
integer (XOR, popcount). A `max_distance` of 7 or more falls back to reading every row.
Tables written before the ranges existed get them on open.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image, ImageOps

from signgate.detectors.base import Evidence
from signgate.hashing import sha256_hex
from signgate.models import ArtifactKind
from signgate.settings import Settings

FLAG_REPLAYED_CAPTURE = "replayed_capture"  # the same flag sealing raises for exact copies
DEFAULT_MAX_DISTANCE = 6
HASH_SIDE = 256  # images are reduced to at most this before hashing
BUSY_TIMEOUT_MS = 10_000
IMAGE_KINDS: tuple[ArtifactKind, ...] = (
    ArtifactKind.selfie,
    ArtifactKind.id_front,
    ArtifactKind.id_back,
)

# The pHash's 64 bits in PHASH_CHUNKS disjoint ranges (10 + 6 x 9 bits), lowest first.
PHASH_CHUNKS = 7
_CHUNK_BITS = (10, 9, 9, 9, 9, 9, 9)
_CHUNK_COLUMNS = tuple(f"phash_part{i}" for i in range(PHASH_CHUNKS))
_ROW_COLUMNS = (
    "session_id",
    "artifact_kind",
    "sha256",
    "phash",
    "dhash",
    "created_at",
    *_CHUNK_COLUMNS,
)

# The table as first made; the pHash ranges are added as columns (`_CHUNK_COLUMNS`), so a
# table made before them gets them the same way. `{t}` is the table's name.
TABLE_DDL = """CREATE TABLE IF NOT EXISTS {t} (
        session_id TEXT NOT NULL,
        artifact_kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        phash TEXT,
        dhash TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (session_id, artifact_kind, sha256)
    )"""
INDEX_DDL = tuple(
    f"CREATE INDEX IF NOT EXISTS perceptual_hashes_{column} ON {{t}} ({column})"
    for column in ("sha256", *_CHUNK_COLUMNS)
)


@dataclass(frozen=True)
class ImageHashes:
    phash: imagehash.ImageHash
    dhash: imagehash.ImageHash


@dataclass(frozen=True)
class ReplayMatch:
    """An earlier image from another session that the query is a (near) copy of.

    Distances are Hamming bits out of 64; None when the match is by SHA-256 alone and one
    side could not be decoded.
    """

    session_id: str
    artifact_kind: ArtifactKind
    sha256: str
    exact: bool
    phash_distance: int | None
    dhash_distance: int | None


# An image as the index keeps it: kind, SHA-256, perceptual hashes (None: undecodable).
HashedImage = tuple[ArtifactKind, str, ImageHashes | None]


@dataclass(frozen=True)
class ReplayFindings:
    """What `check_replay` found: sealing flags (for `SealedEvidence.flags`) and why, and
    the images it hashed, for `PerceptualIndex.record_round` once the round is sealed."""

    flags: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)
    hashed: list[HashedImage] = field(default_factory=list)


def image_hashes(image_bytes: bytes) -> ImageHashes | None:
    """pHash and dHash of an image, or None if the bytes do not decode as one."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            # JPEG: the decoder scales by 1/2..1/8 (staying >= HASH_SIDE) and emits luma
            # only; both hashes are of the greyscale picture anyway. Other formats: no-op.
            image.draft("L", (HASH_SIDE, HASH_SIDE))
            image.load()
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((HASH_SIDE, HASH_SIDE))
            return ImageHashes(imagehash.phash(upright), imagehash.dhash(upright))
    # Hostile bytes may fail anywhere inside a decoder (UnidentifiedImageError, OSError,
    # ValueError, SyntaxError, DecompressionBombError...): all mean "not an image we hash".
    except Exception:
        return None


class PerceptualIndex:
    """Perceptual hashes of every image artifact seen, in portable SQL (`{t}` for the table,
    `?` for parameters). A backend supplies `_read` (a connection) and `_write` (a
    connection in one committed transaction): `SqlitePerceptualIndex` beside the SQLite
    ledger, `PostgresPerceptualIndex` beside the PostgreSQL one, so every worker host
    checks against every capture sealed anywhere (`open_perceptual_index`)."""

    _table = "perceptual_hashes"
    _placeholder = "?"

    def record(self, session_id: str, kind: ArtifactKind, sha256: str, image_bytes: bytes) -> None:
        """Remember one artifact; undecodable bytes are kept by SHA-256 alone."""
        self.record_round(session_id, [(kind, sha256, image_hashes(image_bytes))])

    def record_round(self, session_id: str, images: list[HashedImage]) -> None:
        """Remember a round's images, hashed already (`ReplayFindings.hashed`), at once."""
        now = datetime.now(UTC).isoformat()
        rows = [
            (
                session_id,
                kind.value,
                sha256,
                str(hashes.phash) if hashes else None,
                str(hashes.dhash) if hashes else None,
                now,
                *_phash_chunks(_as_int(str(hashes.phash)) if hashes else None),
            )
            for kind, sha256, hashes in images
        ]
        self._insert(rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        """Rows in `_ROW_COLUMNS` order; one already stored is left as it is. Returns how
        many were new."""
        if not rows:
            return 0  # a round without images: no transaction to open
        placeholders = ", ".join("?" * len(_ROW_COLUMNS))
        with self._write() as conn:
            cursor = conn.cursor()
            cursor.executemany(
                self._sql(
                    f"INSERT INTO {{t}} ({', '.join(_ROW_COLUMNS)}) VALUES ({placeholders})"
                    " ON CONFLICT DO NOTHING"
                ),
                rows,
            )
            return int(cursor.rowcount)

    def find_near(
        self, image_bytes: bytes, exclude_session: str, max_distance: int = DEFAULT_MAX_DISTANCE
    ) -> list[ReplayMatch]:
        """Images of other sessions that are exact or near copies, closest first."""
        return self._find(
            sha256_hex(image_bytes), image_hashes(image_bytes), exclude_session, max_distance
        )

    def _find(
        self, sha256: str, query: ImageHashes | None, exclude_session: str, max_distance: int
    ) -> list[ReplayMatch]:
        candidates = self._candidates(exclude_session, sha256, query, max_distance)
        return _matches(candidates, sha256, query, max_distance)

    def _candidates(
        self, exclude_session: str, sha256: str, query: ImageHashes | None, max_distance: int
    ) -> list[_Stored]:
        """Other sessions' images that can match: the same SHA-256, or (within
        `max_distance` < PHASH_CHUNKS bits) a pHash that agrees on one of its bit ranges.
        A superset of the matches, which `_matches` then picks exactly."""
        if query is not None and max_distance >= PHASH_CHUNKS:
            return self._stored(exclude_session)
        where = "sha256 = ?"
        params: list[str | int | None] = [exclude_session, sha256]
        if query is not None:
            where += "".join(f" OR {column} = ?" for column in _CHUNK_COLUMNS)
            params.extend(_phash_chunks(_as_int(str(query.phash))))
        return self._select(f"session_id != ? AND ({where})", params)

    def _stored(self, exclude_session: str) -> list[_Stored]:
        """Every other session's image (a scan: only for thresholds multi-index hashing
        cannot serve)."""
        return self._select("session_id != ?", [exclude_session])

    def _select(self, where: str, params: list[str | int | None]) -> list[_Stored]:
        with self._read() as conn:
            columns = "session_id, artifact_kind, sha256, phash, dhash"
            query = self._sql(f"SELECT {columns} FROM {{t}} WHERE {where}")
            rows = conn.execute(query, params).fetchall()
        return [
            (sid, kind, sha, _as_int(phash), _as_int(dhash))
            for sid, kind, sha, phash, dhash in rows
        ]

    def rows(self) -> list[tuple[Any, ...]]:
        """Every stored row as `record_round` writes it, oldest first (for a copy)."""
        columns = ", ".join(_ROW_COLUMNS)
        with self._read() as conn:
            return list(conn.execute(self._sql(f"SELECT {columns} FROM {{t}} ORDER BY created_at")))

    def close(self) -> None:
        """Give back connections kept between calls (the SQLite index keeps none)."""

    def _sql(self, sql: str) -> str:
        return sql.replace("{t}", self._table).replace("?", self._placeholder)

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError


class SqlitePerceptualIndex(PerceptualIndex):
    """The index in the ledger's SQLite file (a table the ledger's triggers do not guard)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with self._write() as conn:
            conn.execute(self._sql(TABLE_DDL))
            _add_phash_chunks(conn)
            for statement in INDEX_DDL:
                conn.execute(self._sql(statement))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        with closing(conn):
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            yield conn

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connect()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")


def open_perceptual_index(settings: Settings) -> PerceptualIndex:
    """The index beside the ledger the settings name (psycopg only for PostgreSQL)."""
    if settings.ledger == "postgres":
        from signgate.detectors.replay_postgres import PostgresPerceptualIndex

        return PostgresPerceptualIndex(settings.postgres_dsn, settings.ledger_schema)
    return SqlitePerceptualIndex(settings.ledger_path)


# (session_id, artifact_kind, sha256, phash, dhash), hashes as ints (None: undecodable).
_Stored = tuple[str, str, str, int | None, int | None]


def _phash_chunks(phash: int | None) -> tuple[int | None, ...]:
    """The pHash's bit ranges, lowest first (all None for an undecodable image)."""
    if phash is None:
        return (None,) * PHASH_CHUNKS
    chunks = []
    for bits in _CHUNK_BITS:
        chunks.append(phash & ((1 << bits) - 1))
        phash >>= bits
    return tuple(chunks)


def _add_phash_chunks(conn: sqlite3.Connection) -> None:
    """Give the table its bit-range columns, filling them in for rows written before they
    existed (idempotent; the caller holds a write transaction)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(perceptual_hashes)")}
    missing = [column for column in _CHUNK_COLUMNS if column not in present]
    for column in missing:
        conn.execute(f"ALTER TABLE perceptual_hashes ADD COLUMN {column} INTEGER")
    if missing:
        rows = conn.execute(
            "SELECT rowid, phash FROM perceptual_hashes WHERE phash IS NOT NULL"
        ).fetchall()
        conn.executemany(
            "UPDATE perceptual_hashes SET "
            + ", ".join(f"{column} = ?" for column in _CHUNK_COLUMNS)
            + " WHERE rowid = ?",
            [(*_phash_chunks(_as_int(phash)), rowid) for rowid, phash in rows],
        )


def _as_int(hex_hash: str | None) -> int | None:
    """`str(ImageHash)` is its bits as one hex number: XOR and popcount of the integers
    is the Hamming distance `ImageHash.__sub__` computes on the bit arrays."""
    return None if hex_hash is None else int(hex_hash, 16)


def _matches(
    stored: list[_Stored], sha256: str, query: ImageHashes | None, max_distance: int
) -> list[ReplayMatch]:
    """The stored images the query copies exactly or nearly, closest first."""
    hashes = None if query is None else (_as_int(str(query.phash)), _as_int(str(query.dhash)))
    matches = [m for row in stored if (m := _match(row, sha256, hashes, max_distance))]
    # A total order, so the closest match named does not depend on how rows were read.
    return sorted(
        matches,
        key=lambda m: (not m.exact, _distance_key(m), m.session_id, m.artifact_kind, m.sha256),
    )


def _match(
    row: _Stored, sha256: str, query: tuple[int | None, int | None] | None, max_distance: int
) -> ReplayMatch | None:
    session_id, kind, stored_sha256, stored_phash, stored_dhash = row
    exact = stored_sha256 == sha256
    phash_distance = dhash_distance = None
    if query is not None and stored_phash is not None and stored_dhash is not None:
        query_phash, query_dhash = query
        assert query_phash is not None and query_dhash is not None
        phash_distance = (query_phash ^ stored_phash).bit_count()
        dhash_distance = (query_dhash ^ stored_dhash).bit_count()
    near = (
        phash_distance is not None
        and dhash_distance is not None
        and phash_distance <= max_distance
        and dhash_distance <= max_distance
    )
    if not (exact or near):
        return None
    return ReplayMatch(
        session_id, ArtifactKind(kind), stored_sha256, exact, phash_distance, dhash_distance
    )


def _distance_key(match: ReplayMatch) -> int:
    return (match.phash_distance or 0) + (match.dhash_distance or 0)


def check_replay(
    evidence: Evidence, index: PerceptualIndex, max_distance: int = DEFAULT_MAX_DISTANCE
) -> ReplayFindings:
    """Flag `replayed_capture` if any image of this round copies another session's image.

    Only looks; recording this round's images (`index.record_round(findings.hashed)`) is
    the caller's step, after the seal, so a retried check never finds the round it is
    checking.
    """
    flags: set[str] = set()
    explanations: list[str] = []
    hashed: list[HashedImage] = []
    for kind in IMAGE_KINDS:
        image_bytes = evidence.media.get(kind)
        if image_bytes is None:
            continue
        hashes = image_hashes(image_bytes)
        if hashes is None:
            explanations.append(
                f"{kind.value}: not a decodable image, perceptual check skipped"
                " (exact SHA-256 match only)"
            )
        sha256 = sha256_hex(image_bytes)
        hashed.append((kind, sha256, hashes))
        matches = index._find(sha256, hashes, evidence.session_id, max_distance)
        if matches:
            flags.add(FLAG_REPLAYED_CAPTURE)
            explanations.append(f"{kind.value}: {describe(matches[0])}")
    return ReplayFindings(flags=sorted(flags), explanations=explanations, hashed=hashed)


def describe(match: ReplayMatch) -> str:
    """One line naming the earlier artifact and how close it is (no image data)."""
    where = f"{match.artifact_kind.value} {match.sha256[:12]} of session {match.session_id}"
    if match.exact:
        return f"byte-identical to {where}"
    return (
        f"near copy of {where} (pHash {match.phash_distance}, dHash {match.dhash_distance}"
        " bits of 64)"
    )
