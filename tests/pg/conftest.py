"""PostgreSQL fixtures: the real server at 127.0.0.1:5432 (or SIGNGATE_POSTGRES_DSN).

Other helpers and test runs share the server, so every test gets its own schema with a
random suffix and drops it (CASCADE) afterwards; roles made by a test are dropped too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from signgate.settings import Settings


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    return Settings().postgres_dsn


def superuser(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection as the DSN's (super)user: what an attacker with it has."""
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10)


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    name = f"sg_test_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        with superuser(pg_dsn) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def pg_role(pg_dsn: str) -> Iterator[str]:
    """A LOGIN role with no privileges yet (trust auth: it connects without a password)."""
    name = f"sg_app_{secrets.token_hex(6)}"
    with superuser(pg_dsn) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        with superuser(pg_dsn) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")
