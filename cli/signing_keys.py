"""`signgate signing-key` and `signgate payload-key`: list and rotate our keys.

Wire in with `app.add_typer(signing_key_app, name="signing-key")` and
`app.add_typer(payload_key_app, name="payload-key")`. Both act on the key files under
the settings' `var/keys`; running workers and gateways pick a new key up when they
restart (they load keys at start), and every older key keeps verifying or decrypting.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from signgate.errors import SigngateError
from signgate.payload_codec import key_files, payload_key_id, rotate_key
from signgate.settings import get_settings
from signgate.signer import (
    PUBLIC_SUFFIX,
    KeyRing,
    Signer,
    rotate_signing_key,
    signing_key_names,
)

signing_key_app = typer.Typer(
    no_args_is_help=True, help="Ed25519 signing keys (ledger, seals, attestations)."
)
payload_key_app = typer.Typer(no_args_is_help=True, help="AES-256 Temporal payload keys.")

console = Console()
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object")]
RESTART_NOTE = "restart workers and the gateway to use it; older keys keep working for reading"


@signing_key_app.callback()
def _signing_group() -> None:
    """Ed25519 signing keys (ledger, seals, attestations)."""


@payload_key_app.callback()
def _payload_group() -> None:
    """AES-256 Temporal payload keys."""


@signing_key_app.command("list")
def list_signing_keys(as_json: JsonOption = False) -> None:
    """Every public key kept for verification; the active one signs, retired ones only verify."""
    keys_dir = get_settings().keys_dir
    names = signing_key_names(keys_dir)
    active = Signer.load_active(keys_dir).key_id if names else None
    rows = []
    for path in sorted(keys_dir.glob(f"*{PUBLIC_SUFFIX}")):
        kid = KeyRing.from_pems([path.read_bytes()]).key_ids[0]
        name = path.name.removesuffix(PUBLIC_SUFFIX)
        state = "active" if kid == active else ("signing" if name in names else "verify-only")
        rows.append({"key_id": kid, "name": name, "state": state})
    _show(rows, as_json, "signing keys")


@signing_key_app.command("rotate")
def rotate_signing(as_json: JsonOption = False) -> None:
    """Make a new active signing key; retire the older private keys, keep their public keys."""
    try:
        signer = rotate_signing_key(get_settings().keys_dir)
    except SigngateError as err:
        _fail(err)
    _done({"active_key_id": signer.key_id}, as_json, f"new active signing key {signer.key_id}")


@payload_key_app.command("list")
def list_payload_keys(as_json: JsonOption = False) -> None:
    """Payload key files, newest (the encrypting one) first; ids only, never key bytes."""
    files = list(reversed(key_files(get_settings().keys_dir)))
    rows = [
        {"key_id": payload_key_id(p.read_bytes()), "name": p.name, "state": state}
        for p, state in zip(files, ["active"] + ["decrypt-only"] * len(files), strict=False)
    ]
    _show(rows, as_json, "payload keys")


@payload_key_app.command("rotate")
def rotate_payload(as_json: JsonOption = False) -> None:
    """Add a new payload key that encrypts from now on; every older key still decrypts."""
    settings = get_settings()
    if settings.payload_keys:
        _fail(
            SigngateError(
                "payload keys come from SIGNGATE_PAYLOAD_KEYS: put the new key first there",
                reason="payload_keys_in_settings",
            )
        )
    keys = rotate_key(settings.keys_dir)
    _done({"active_key_id": keys.active_id}, as_json, f"new active payload key {keys.active_id}")


def _show(rows: list[dict[str, str]], as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps({"keys": rows}))
        return
    table = Table("key id", "name", "state", title=what)
    for row in rows:
        table.add_row(row["key_id"], row["name"], row["state"])
    console.print(table)


def _done(body: dict[str, str], as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(body))
    else:
        console.print(f"{text}; {RESTART_NOTE}", highlight=False)


def _fail(err: SigngateError) -> None:
    err_console.print(f"error {err.reason}: {err.message}", markup=False, highlight=False)
    raise typer.Exit(code=2)
