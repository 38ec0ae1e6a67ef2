"""The API key store: who may call the gateway, as whom, for which tenant, in which roles.

A key is 32 random bytes (`sg_` + URL-safe base64), shown once when it is created and
never stored: the store keeps its SHA-256. A fast hash is enough, and the right choice,
because the key is high-entropy: nobody can brute-force 2^256 candidates however cheap
each one is, so a slow password hash (bcrypt, argon2) would buy nothing and would cost
CPU on every request, which is a lever for anyone flooding the gateway with guesses.
Looking a key up by its hash is also constant-time in what matters: the index lookup
depends on the hash, which a guesser cannot steer towards a stored one.

The store is SQLite (WAL) under var/, so keys survive restarts and a revocation holds
from the next request on (nothing is cached). `app` keys are tenant keys; the staff roles
(reviewer, senior_reviewer, ops, admin) belong to the operator and see every tenant, so
one key never mixes the two.

The embedded stack (`signgate dev`, the demo, the end-to-end tests) mints one key per
dev identity at first start and writes them, and only them, to a 0600 file under var/.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from signgate.errors import BadInput
from signgate.models import ReviewerRole
from signgate.settings import ApiKey, Role

ROLES: tuple[Role, ...] = get_args(Role)
STAFF_ROLES: frozenset[Role] = frozenset({"reviewer", "senior_reviewer", "ops", "admin"})
# When a caller holds several roles, `Caller.role` (one role, for older callers) is the
# first of these that it holds.
_ROLE_PRECEDENCE: tuple[Role, ...] = ("admin", "ops", "senior_reviewer", "reviewer", "app")

KEY_PREFIX = "sg_"
DEV_KEYS_FILE = "dev-api-keys.json"

# The embedded stack's identities (principal per role); their keys are minted at first start.
DEV_IDENTITIES: dict[Role, ApiKey] = {
    "app": ApiKey(role="app", principal="demo-app"),
    "reviewer": ApiKey(role="reviewer", principal="rev-alice"),
    "senior_reviewer": ApiKey(role="senior_reviewer", principal="rev-bob"),
    "ops": ApiKey(role="ops", principal="ops-carol"),
    "admin": ApiKey(role="admin", principal="admin-dana"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    tenant_id  TEXT NOT NULL,
    principal  TEXT NOT NULL,
    roles      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


class Caller(ApiKey):
    """An authenticated key: `role` is kept for older callers, `roles` is the whole truth."""

    key_id: str
    roles: frozenset[Role]

    @property
    def tenant_scoped(self) -> bool:
        """An app key sees its own tenant only; staff keys see every tenant."""
        return "app" in self.roles

    @property
    def reviewer_role(self) -> ReviewerRole | None:
        if "senior_reviewer" in self.roles:
            return ReviewerRole.senior_reviewer
        if "reviewer" in self.roles:
            return ReviewerRole.reviewer
        return None


class StoredKey(BaseModel):
    """What `keys list` shows: everything but the key."""

    key_id: str
    tenant_id: str
    principal: str
    roles: list[Role]
    created_at: datetime
    revoked_at: datetime | None = None

    def caller(self) -> Caller:
        roles = frozenset(self.roles)
        primary = next(r for r in _ROLE_PRECEDENCE if r in roles)
        return Caller(
            role=primary,
            principal=self.principal,
            tenant_id=self.tenant_id,
            key_id=self.key_id,
            roles=roles,
        )


class KeyRevoked(Exception):
    """The key was real but has been revoked."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_store_path(var_dir: Path) -> Path:
    return var_dir / "api_keys.sqlite3"


def _check_roles(roles: Iterable[str]) -> list[Role]:
    chosen = sorted(set(roles))
    unknown = [r for r in chosen if r not in ROLES]
    if not chosen or unknown:
        raise BadInput(
            f"roles must be one or more of {', '.join(ROLES)} (got {', '.join(unknown) or 'none'})",
            reason="api_key_roles_invalid",
        )
    if "app" in chosen and len(chosen) > 1:
        raise BadInput(
            "an app key is a tenant key; staff roles go on a separate key",
            reason="api_key_roles_invalid",
        )
    return [r for r in ROLES if r in chosen]


def _check_name(value: str, what: str) -> str:
    if not value or len(value) > 64 or not value.isascii() or not value.isprintable():
        raise BadInput(f"{what} must be 1-64 printable ASCII characters", reason="bad_input")
    return value


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(self, tenant_id: str, principal: str, roles: Iterable[str]) -> tuple[StoredKey, str]:
        """Mint a key; the returned plaintext is the only copy there will ever be."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        return self._insert(key, tenant_id, principal, roles), key

    def register(self, key: str, tenant_id: str, principal: str, roles: Iterable[str]) -> StoredKey:
        """Store the hash of a key minted elsewhere (a secret manager, a test fixture)."""
        if len(key) < 12:
            raise BadInput("a key needs at least 12 characters", reason="api_key_too_short")
        return self._insert(key, tenant_id, principal, roles)

    def _insert(self, key: str, tenant_id: str, principal: str, roles: Iterable[str]) -> StoredKey:
        stored = StoredKey(
            key_id="k_" + secrets.token_hex(6),
            tenant_id=_check_name(tenant_id, "tenant"),
            principal=_check_name(principal, "principal"),
            roles=_check_roles(roles),
            created_at=datetime.now(UTC),
        )
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (
                        stored.key_id,
                        hash_key(key),
                        stored.tenant_id,
                        stored.principal,
                        ",".join(stored.roles),
                        stored.created_at.isoformat(),
                    ),
                )
        except sqlite3.IntegrityError as err:
            raise BadInput("this key is already stored", reason="api_key_exists") from err
        return stored

    def authenticate(self, presented: str) -> Caller | None:
        """The caller a key acts as; None if unknown; KeyRevoked if revoked."""
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM api_keys WHERE key_sha256 = ?", (hash_key(presented),)
            ).fetchone()
        if row is None:
            return None
        stored = _row(row)
        if stored.revoked_at is not None:
            raise KeyRevoked(stored.key_id)
        return stored.caller()

    def find(self, key_id: str) -> StoredKey | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else _row(row)

    def list(self) -> list[StoredKey]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> StoredKey:
        """Revoke a key (idempotent: revoking twice keeps the first time)."""
        with self._db() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), key_id),
            )
            row = db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise BadInput(f"no API key {key_id!r}", reason="api_key_not_found")
        return _row(row)

    def reviewer_roster(self) -> dict[str, ReviewerRole]:
        """Principals that may review, from active keys (senior wins over reviewer)."""
        roster: dict[str, ReviewerRole] = {}
        for key in self.list():
            caller = key.caller()
            role = caller.reviewer_role
            if key.revoked_at is None and role is not None:
                if roster.get(key.principal) is not ReviewerRole.senior_reviewer:
                    roster[key.principal] = role
        return roster


def _row(row: tuple[str, str, str, str, str, str, str | None]) -> StoredKey:
    key_id, _, tenant_id, principal, roles, created_at, revoked_at = row
    return StoredKey(
        key_id=key_id,
        tenant_id=tenant_id,
        principal=principal,
        roles=roles.split(","),  # type: ignore[arg-type]  # validated by pydantic
        created_at=datetime.fromisoformat(created_at),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )


# --------------------------------------------------------------------------- dev keys


def dev_keys_path(var_dir: Path) -> Path:
    return var_dir / DEV_KEYS_FILE


def ensure_dev_keys(var_dir: Path) -> dict[Role, str]:
    """The embedded stack's keys: minted at first start, then read back from the 0600 file.

    If the file is gone or names a key the store no longer accepts, a fresh set is minted.
    """
    store = KeyStore(key_store_path(var_dir))
    path = dev_keys_path(var_dir)
    existing = _read_dev_keys(path)
    if existing is not None and all(_active(store, key) for key in existing.values()):
        return existing
    minted: dict[Role, str] = {}
    for role, identity in DEV_IDENTITIES.items():
        _, minted[role] = store.create(identity.tenant_id, identity.principal, [role])
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(minted, out, indent=2)
    os.replace(tmp, path)
    return minted


def _active(store: KeyStore, key: str) -> bool:
    try:
        return store.authenticate(key) is not None
    except KeyRevoked:
        return False


def _read_dev_keys(path: Path) -> dict[Role, str] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(DEV_IDENTITIES):
        return None
    return {role: str(data[role]) for role in DEV_IDENTITIES}


def dev_key_for(var_dir: Path, role: Role) -> str:
    """A dev key holding `role`, from the file the embedded stack wrote at first start."""
    keys = _read_dev_keys(dev_keys_path(var_dir))
    if keys is None:
        raise BadInput(
            f"no dev API keys in {dev_keys_path(var_dir)}: start `signgate dev` once, "
            "or pass a key made with `signgate keys create`",
            reason="api_key_missing",
        )
    return keys[role]
