"""The perceptual replay index in PostgreSQL: a capture sealed through one worker host is
found from another, with the same answers as the SQLite index and the same cheap lookup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from PIL import Image
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from cli.main import app
from signgate.detectors.replay import (
    DEFAULT_MAX_DISTANCE,
    FLAG_REPLAYED_CAPTURE,
    PerceptualIndex,
    SqlitePerceptualIndex,
    check_replay,
    open_perceptual_index,
)
from signgate.detectors.replay_postgres import PostgresPerceptualIndex, ReplayIndexUnavailable
from signgate.hashing import sha256_hex
from signgate.ledger_postgres import PostgresLedger
from signgate.models import ArtifactKind
from signgate.settings import Settings, get_settings
from signgate.signer import Signer
from tests.pg.conftest import superuser
from tests.unit.test_perceptual_replay import (
    ATTACKER_SESSION,
    ORIGINAL_SESSION,
    as_hashes,
    assert_found_like_a_full_scan,
    astronaut,  # noqa: F401  (fixture)
    astronaut_jpeg,  # noqa: F401  (fixture)
    crowd,
    evidence,
    near_copies,
    near_copy_cases,
)


@pytest.fixture
def host_a(pg_dsn: str, pg_schema: str) -> Iterator[PostgresPerceptualIndex]:
    index = PostgresPerceptualIndex(pg_dsn, pg_schema)
    yield index
    index.close()


def test_the_settings_pick_the_postgres_index_beside_the_postgres_ledger(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    on_pg = Settings(
        var_dir=tmp_path, ledger="postgres", postgres_dsn=pg_dsn, ledger_schema=pg_schema
    )
    index = open_perceptual_index(on_pg)
    assert isinstance(index, PostgresPerceptualIndex)
    index.close()
    assert isinstance(open_perceptual_index(Settings(var_dir=tmp_path)), SqlitePerceptualIndex)


def test_a_near_copy_sealed_on_another_host_is_found_as_sqlite_finds_it(
    host_a: PostgresPerceptualIndex,
    pg_dsn: str,
    pg_schema: str,
    astronaut: Image.Image,  # noqa: F811
    astronaut_jpeg: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    lite = SqlitePerceptualIndex(tmp_path / "ledger.sqlite3")
    for index in (host_a, lite):
        index.record(
            ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg
        )
        index.record(
            ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg
        )
    host_b = PostgresPerceptualIndex(pg_dsn, pg_schema)  # another worker host, same database
    try:
        assert len(host_b._stored(ATTACKER_SESSION)) == 1  # recording twice kept one row
        for name, copy in near_copies(astronaut).items():
            found = host_b.find_near(copy, ATTACKER_SESSION)
            assert [m.session_id for m in found] == [ORIGINAL_SESSION], name
            assert found == lite.find_near(copy, ATTACKER_SESSION), name
        assert host_b.find_near(astronaut_jpeg, ORIGINAL_SESSION) == []  # its own: no replay
        findings = check_replay(evidence(ATTACKER_SESSION, selfie=astronaut_jpeg), host_b)
        assert findings.flags == [FLAG_REPLAYED_CAPTURE]
        assert "byte-identical" in findings.explanations[0]
    finally:
        host_b.close()


@pytest.fixture
def crowded_pg(pg_dsn: str, pg_schema: str) -> Iterator[PerceptualIndex]:
    index = crowd(PostgresPerceptualIndex(pg_dsn, pg_schema))
    yield index
    index.close()


def test_lookups_on_postgres_read_few_rows_and_miss_no_near_copy(
    crowded_pg: PerceptualIndex,
) -> None:
    total = len(crowded_pg._stored(ATTACKER_SESSION))
    query = as_hashes(0x0123456789ABCDEF, 0xFEDCBA9876543210)
    candidates = crowded_pg._candidates(ATTACKER_SESSION, "f" * 64, query, DEFAULT_MAX_DISTANCE)
    assert total >= 3000 and len(candidates) < total / 20

    @settings(max_examples=40, deadline=None)
    @near_copy_cases
    def found_like_a_full_scan(
        phash: int, dhash: int, phash_flips: list[int], dhash_flips: list[int]
    ) -> None:
        assert_found_like_a_full_scan(crowded_pg, phash, dhash, phash_flips, dhash_flips)

    found_like_a_full_scan()


def test_the_app_role_records_and_reads_the_index_but_cannot_erase_it(
    pg_dsn: str,
    pg_schema: str,
    pg_role: str,
    astronaut_jpeg: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = PostgresLedger(pg_dsn, pg_schema, Signer.load_active(tmp_path / "keys"))
    owner.grant_append_only(pg_role)
    app = PostgresPerceptualIndex(make_conninfo(pg_dsn, user=pg_role), pg_schema)
    try:
        app.record(
            ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg
        )
        assert [m.session_id for m in app.find_near(astronaut_jpeg, ATTACKER_SESSION)] == [
            ORIGINAL_SESSION
        ]
    finally:
        app.close()
    table = f"{pg_schema}.perceptual_hashes"
    for attack in (
        f"DELETE FROM {table}",
        f"UPDATE {table} SET phash = NULL",
        f"DROP TABLE {table}",
    ):
        with psycopg.connect(make_conninfo(pg_dsn, user=pg_role), autocommit=True) as conn:
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(attack)


def test_a_ledger_made_before_the_index_gets_it_from_the_owner(
    pg_dsn: str, pg_schema: str, pg_role: str, tmp_path: Path
) -> None:
    PostgresLedger(pg_dsn, pg_schema, Signer.load_active(tmp_path / "keys"))
    table = f"{pg_schema}.perceptual_hashes"
    with superuser(pg_dsn) as conn:
        conn.execute(f"DROP TABLE {table}")  # as a schema made by an earlier version
        conn.execute(f"GRANT USAGE ON SCHEMA {pg_schema} TO {pg_role}")
    app_dsn = make_conninfo(pg_dsn, user=pg_role)
    with pytest.raises(ReplayIndexUnavailable, match="grant_append_only") as refused:
        PostgresPerceptualIndex(app_dsn, pg_schema)  # the app role may not create it
    assert refused.value.reason == "replay_index_unavailable"

    PostgresLedger(pg_dsn, pg_schema, None).grant_append_only(pg_role)  # the owner, again
    app = PostgresPerceptualIndex(app_dsn, pg_schema)
    try:
        assert app._stored(ATTACKER_SESSION) == []
    finally:
        app.close()


def test_a_hosts_sqlite_index_is_imported_once_and_found_from_every_host(
    pg_dsn: str,
    pg_schema: str,
    astronaut: Image.Image,  # noqa: F811
    astronaut_jpeg: bytes,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host upgraded from the per-host SQLite index: its earlier captures still count."""
    var = tmp_path / "var"
    lite = SqlitePerceptualIndex(var / "ledger.sqlite3")
    lite.record(ORIGINAL_SESSION, ArtifactKind.selfie, sha256_hex(astronaut_jpeg), astronaut_jpeg)
    lite.record("sess-undecodable", ArtifactKind.id_front, "ab" * 32, b"not an image")
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(var))
    monkeypatch.setenv("SIGNGATE_LEDGER", "postgres")
    monkeypatch.setenv("SIGNGATE_POSTGRES_DSN", pg_dsn)
    monkeypatch.setenv("SIGNGATE_LEDGER_SCHEMA", pg_schema)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(app, ["import-replay-index"])
        assert first.exit_code == 0, first.output
        assert "2 new rows" in first.output
        again = runner.invoke(app, ["import-replay-index"])
        assert again.exit_code == 0 and "0 new rows" in again.output
        missing = runner.invoke(app, ["import-replay-index", "--from", str(tmp_path / "nope")])
        assert missing.exit_code == 2 and "no SQLite file" in missing.output
    finally:
        get_settings.cache_clear()
    other_host = PostgresPerceptualIndex(pg_dsn, pg_schema)
    try:
        assert sorted(other_host.rows()) == sorted(lite.rows())  # copied as stored
        copy = near_copies(astronaut)["resized_to_93_percent"]
        assert [m.session_id for m in other_host.find_near(copy, ATTACKER_SESSION)] == [
            ORIGINAL_SESSION
        ]
    finally:
        other_host.close()
    assert len(lite.rows()) == 2  # the source is left as it was


def test_an_empty_index_imports_nothing(pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    target = PostgresPerceptualIndex(pg_dsn, pg_schema)
    try:
        assert target.import_from(SqlitePerceptualIndex(tmp_path / "empty.sqlite3")) == 0
        assert target.rows() == []
    finally:
        target.close()
