"""`signgate keys`: create, list and revoke API keys in the key store under var/.

Wire it in with `app.add_typer(keys_app, name="keys")`. `create` prints the key once; the
store keeps only its SHA-256, so a lost key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from signgate.api_keys import ROLES, KeyStore, key_store_path
from signgate.errors import SigngateError
from signgate.settings import get_settings

keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")

console = Console()
err_console = Console(stderr=True)


def _fail(err: SigngateError) -> NoReturn:
    err_console.print(f"error {err.reason}: {err.message}", markup=False, highlight=False)
    raise typer.Exit(code=2)


def _store() -> KeyStore:
    return KeyStore(key_store_path(get_settings().var_dir))


@keys_app.command("create")
def create(
    principal: Annotated[str, typer.Option(help="App id or reviewer id the key acts as")],
    role: Annotated[list[str], typer.Option(help=f"One of {', '.join(ROLES)}; repeatable")],
    tenant: Annotated[str, typer.Option(help="Tenant an app key is confined to")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Mint a key and print it once (it is not stored, only its hash is)."""
    try:
        stored, key = _store().create(tenant, principal, role)
    except SigngateError as err:
        _fail(err)
    if as_json:
        print(json.dumps({"key": key, **stored.model_dump(mode="json")}))
        return
    console.print(f"key_id  {stored.key_id}")
    console.print(f"roles   {', '.join(stored.roles)}   tenant {stored.tenant_id}")
    console.print(f"api key {key}", markup=False, highlight=False)
    console.print("[dim]shown once: store it now; signgate keeps only its hash[/dim]")


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """Every key with its id, tenant, principal, roles and state (never the key)."""
    keys = _store().list()
    if as_json:
        print(json.dumps([k.model_dump(mode="json") for k in keys]))
        return
    table = Table("key_id", "tenant", "principal", "roles", "created", "revoked")
    for k in keys:
        revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else ""
        created = k.created_at.isoformat(timespec="seconds")
        table.add_row(k.key_id, k.tenant_id, k.principal, ",".join(k.roles), created, revoked)
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key: refused (401 api_key_revoked) from the next request on."""
    try:
        stored = _store().revoke(key_id)
    except SigngateError as err:
        _fail(err)
    console.print(f"revoked {stored.key_id} ({stored.principal})")
