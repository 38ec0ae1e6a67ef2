"""The key store and `signgate keys`: keys are shown once, stored only as hashes, revocable."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from signgate.api_keys import (
    DEV_IDENTITIES,
    KeyRevoked,
    KeyStore,
    dev_keys_path,
    ensure_dev_keys,
    key_store_path,
)
from signgate.errors import BadInput
from signgate.models import ReviewerRole
from signgate.settings import Settings


def signgate(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNGATE_VAR_DIR": str(var_dir)}
    return subprocess.run(
        [sys.executable, "-m", "cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_cli_creates_lists_and_revokes_without_ever_storing_the_key(tmp_path: Path) -> None:
    created = signgate(
        tmp_path, "create", "--principal", "rev-zoe", "--role", "senior_reviewer", "--json"
    )
    assert created.returncode == 0, created.stderr
    made = json.loads(created.stdout)
    key, key_id = made["key"], made["key_id"]
    assert key.startswith("sg_") and len(key) > 40

    store = KeyStore(key_store_path(tmp_path))
    caller = store.authenticate(key)
    assert caller is not None
    assert (caller.principal, caller.roles, caller.key_id) == (
        "rev-zoe",
        frozenset({"senior_reviewer"}),
        key_id,
    )
    for stored in tmp_path.rglob("*"):
        if stored.is_file():
            assert key.encode() not in stored.read_bytes(), stored

    listed = signgate(tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout
    assert [(k["key_id"], k["revoked_at"]) for k in json.loads(listed.stdout)] == [(key_id, None)]

    revoked = signgate(tmp_path, "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(KeyRevoked):
        store.authenticate(key)
    assert store.reviewer_roster() == {}


def test_keys_cli_refuses_an_unknown_role_with_its_reason(tmp_path: Path) -> None:
    refused = signgate(tmp_path, "create", "--principal", "x", "--role", "root")
    assert refused.returncode == 2
    assert "api_key_roles_invalid" in refused.stderr


def test_an_app_key_never_carries_staff_roles(tmp_path: Path) -> None:
    store = KeyStore(key_store_path(tmp_path))
    with pytest.raises(BadInput) as refused:
        store.create("demo", "sneaky-app", ["app", "reviewer"])
    assert refused.value.reason == "api_key_roles_invalid"


def test_roster_takes_the_senior_role_of_a_principal_with_two_keys(tmp_path: Path) -> None:
    store = KeyStore(key_store_path(tmp_path))
    store.create("demo", "rev-yan", ["reviewer"])
    store.create("demo", "rev-yan", ["senior_reviewer"])
    store.create("demo", "ops-1", ["ops"])
    assert store.reviewer_roster() == {"rev-yan": ReviewerRole.senior_reviewer}


def test_dev_keys_are_minted_once_into_a_private_file(tmp_path: Path) -> None:
    first = ensure_dev_keys(tmp_path)
    assert set(first) == set(DEV_IDENTITIES)
    mode = stat.S_IMODE(dev_keys_path(tmp_path).stat().st_mode)
    assert mode == 0o600
    assert ensure_dev_keys(tmp_path) == first  # a restart keeps them
    settings = Settings(var_dir=tmp_path)
    caller = KeyStore(key_store_path(tmp_path)).authenticate(settings.api_key_for("reviewer"))
    assert caller is not None and caller.principal == "rev-alice"

    # A revoked dev key is replaced at the next start rather than left dead in the file.
    store = KeyStore(key_store_path(tmp_path))
    store.revoke(next(k.key_id for k in store.list() if k.principal == "demo-app"))
    assert ensure_dev_keys(tmp_path)["app"] != first["app"]


def test_without_dev_keys_the_cli_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as missing:
        Settings(var_dir=tmp_path).api_key_for("app")
    assert missing.value.reason == "api_key_missing"
    assert "signgate dev" in missing.value.message
