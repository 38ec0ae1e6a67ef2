"""Read a policy file: `<directory>/<id>.toml`, hashed byte for byte before parsing.

I/O happens here, once per load; `decide` itself never touches the disk. There is no cache on
purpose: the sha256 must describe the bytes on disk now, so an edited file is never decided
under its old hash.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from policies.model import POLICY_ID, Policy
from signgate.errors import BadInput, Fault

DEFAULT_POLICY_ID = "default"
POLICY_DIR = Path(__file__).resolve().parent


def load_policy(policy_id: str | None = None, directory: Path | None = None) -> Policy:
    """Load policy `policy_id` (None: "default") from `directory` (None: the packaged files).

    An unknown id is the caller's mistake (`BadInput`, reason `unknown_policy`); a file that
    exists but does not parse is ours (`Fault`, reason `malformed_policy`), so a retry after
    the file is fixed succeeds.
    """
    wanted = DEFAULT_POLICY_ID if policy_id is None else policy_id
    # The id becomes a file name: anything but a plain slug (e.g. "../x") is simply unknown.
    path = (directory or POLICY_DIR) / f"{wanted}.toml"
    if not re.fullmatch(POLICY_ID, wanted) or not path.is_file():
        raise BadInput(f"no policy with id {wanted!r}", reason="unknown_policy")
    policy = parse_policy(path.read_bytes(), source=str(path))
    if policy.id != wanted:
        raise Fault(f"{path}: id: file says {policy.id!r}", reason="malformed_policy")
    return policy


def parse_policy(raw: bytes, source: str = "<bytes>") -> Policy:
    """Parse policy file bytes; the Policy's sha256 is the sha256 of exactly these bytes."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise Fault(f"{source}: not valid TOML: {err}", reason="malformed_policy") from err
    if "sha256" in data:
        raise Fault(
            f"{source}: sha256: computed from the file, not written in it",
            reason="malformed_policy",
        )
    try:
        return Policy.model_validate({**data, "sha256": hashlib.sha256(raw).hexdigest()})
    except ValidationError as err:
        raise Fault(f"{source}: {_describe(err)}", reason="malformed_policy") from err


def _describe(err: ValidationError) -> str:
    """One line per problem, each naming the field path, e.g. `bands.accept_max: ...`."""
    problems = []
    for e in err.errors():
        where = ".".join(str(part) for part in e["loc"]) or "(top level)"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)
