"""Local detector results, cached by what they were computed from.

A retried activity, a repeated check of the same round or a replay test would otherwise
decode and analyse the same media again (a liveness video costs seconds). The key is the
SHA-256 of the canonical JSON of everything a local detector's answer depends on:

- the check kind and the detector's `model_version` (name, version and package pins, so a
  new detector or a new OpenCV never reuses an old answer),
- the sealed SHA-256 of every artifact of the round (by kind),
- the capture metadata the detectors read (device signals, capture time; not the
  challenge nonce or the sandbox scenario, which no local detector reads, so the same
  media in another round or session is a hit) and the motion challenge.

Only completed results are stored: an error may be a bug fixed tomorrow. Stored results
are never updated (first write wins). The table lives in its own SQLite file under the
data directory; every call opens its own connection (WAL, busy timeout), so one cache is
safe to share between the activity threads and worker processes on one machine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from signgate.canonical import canonical_json
from signgate.hashing import sha256_hex
from signgate.models import CheckRequest, CheckResult, CheckStatus

BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """CREATE TABLE IF NOT EXISTS detector_results (
    cache_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model_version TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created_at TEXT NOT NULL
)"""


def cache_key(request: CheckRequest, model_version: str) -> str:
    """What the answer depends on, hashed (see the module docstring)."""
    facts = {
        "kind": request.kind.value,
        "model_version": model_version,
        "artifacts": {ref.kind.value: ref.sha256 for ref in request.artifacts},
        "capture": request.capture.model_dump(mode="json", exclude={"challenge_nonce", "scenario"}),
        "motion_challenge": list(request.motion_challenge),
    }
    return sha256_hex(canonical_json(facts))


class ResultCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            with conn:
                yield conn

    def get(self, key: str) -> CheckResult | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT result_json FROM detector_results WHERE cache_key = ?", (key,)
            ).fetchone()
        return None if row is None else CheckResult.model_validate_json(row[0])

    def put(self, key: str, result: CheckResult) -> None:
        """Store a completed result; anything else is not cached. First write wins."""
        if result.status is not CheckStatus.completed:
            return
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO detector_results VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    result.kind.value,
                    result.model_version,
                    result.model_dump_json(),
                    datetime.now(UTC).isoformat(),
                ),
            )

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM detector_results").fetchone()[0])
