"""Policy experiments: which policy (and mode) a new session runs under, per tenant.

A tenant's experiment lives in `policies/experiments/<tenant_id>.toml`; no file means 100%
"default" in enforce mode. The file format:

    mode = "shadow"            # optional, tenant-wide default for every split (else enforce)

    [[split]]
    policy_id = "default"
    percent = 90

    [[split]]
    policy_id = "strict"
    percent = 10
    mode = "shadow"            # optional, overrides the tenant-wide mode for this split

Percentages have a resolution of 0.01 and must sum to exactly 100. A file with only
`mode` (no splits) is 100% "default" in that mode.

Assignment is pure and stable: `sha256("<tenant_id>:<session_id>")` as an integer mod 10000
picks a bucket, and the buckets are laid out over the splits in file order by cumulative
percentage. The same session always lands on the same split while the file is unchanged;
changing the percentages or their order moves sessions between splits (only new sessions
are affected: a running session keeps the policy it started with).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from policies.loader import DEFAULT_POLICY_ID, POLICY_DIR
from policies.model import POLICY_ID, Strict
from signgate.errors import Fault
from signgate.models import Mode

EXPERIMENTS_DIR = POLICY_DIR / "experiments"
BUCKETS = 10_000  # 0.01% resolution
_PER_PERCENT = BUCKETS // 100
# Tenant ids become file names: anything but a plain slug simply has no experiment file.
_TENANT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Split(Strict):
    """`percent` of a tenant's new sessions run `policy_id` in `mode`."""

    policy_id: str = Field(pattern=POLICY_ID)
    percent: float = Field(ge=0.0, le=100.0)
    mode: Mode = Mode.enforce

    @property
    def buckets(self) -> int:
        return round(self.percent * _PER_PERCENT)

    @model_validator(mode="after")
    def _resolution(self) -> Split:
        if abs(self.percent * _PER_PERCENT - self.buckets) > 1e-6:
            raise ValueError(f"percent {self.percent} is finer than 0.01")
        return self


class Assignment(Strict):
    policy_id: str
    mode: Mode


DEFAULT_SPLITS: tuple[Split, ...] = (Split(policy_id=DEFAULT_POLICY_ID, percent=100),)


def validate_splits(splits: Sequence[Split]) -> None:
    """Raise ValueError unless there is at least one split and the percentages sum to 100."""
    if not splits:
        raise ValueError("an experiment needs at least one split")
    total = sum(s.buckets for s in splits)
    if total != BUCKETS:
        shown = ", ".join(f"{s.policy_id}={s.percent:g}" for s in splits)
        raise ValueError(
            f"split percentages must sum to 100, not {total / _PER_PERCENT:g} ({shown})"
        )


def bucket_of(session_id: str, tenant_id: str) -> int:
    digest = hashlib.sha256(f"{tenant_id}:{session_id}".encode()).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def assign_policy(session_id: str, tenant_id: str, splits: Sequence[Split]) -> Assignment:
    """The split this session falls in. Pure: same inputs, same answer, no I/O."""
    validate_splits(splits)
    bucket = bucket_of(session_id, tenant_id)
    upper = 0
    for split in splits:
        upper += split.buckets
        if bucket < upper:
            return Assignment(policy_id=split.policy_id, mode=split.mode)
    raise AssertionError("unreachable: splits cover all buckets")  # pragma: no cover


class Experiment(Strict):
    """A tenant's experiment: its tenant-wide default mode and its splits."""

    mode: Mode = Mode.enforce
    splits: list[Split]


DEFAULT_EXPERIMENT = Experiment(splits=list(DEFAULT_SPLITS))


def load_splits(
    tenant_id: str, directory: Path | None = None, policy_directory: Path | None = None
) -> list[Split]:
    """The tenant's splits (see `load_experiment`)."""
    return load_experiment(tenant_id, directory, policy_directory).splits


def load_experiment(
    tenant_id: str, directory: Path | None = None, policy_directory: Path | None = None
) -> Experiment:
    """The tenant's experiment from `<directory>/<tenant_id>.toml` (None: the packaged folder).

    No file: 100% "default", enforce. A file that does not parse, whose percentages do not
    sum to 100, or that names a policy file that does not exist is our mistake (`Fault`,
    reason `malformed_experiment`): sessions are refused rather than silently run under a
    policy nobody chose. Read on every call, like policies, so an edit applies at once.
    """
    folder = EXPERIMENTS_DIR if directory is None else directory
    path = folder / f"{tenant_id}.toml"
    if not _TENANT_FILE.fullmatch(tenant_id) or not path.is_file():
        return DEFAULT_EXPERIMENT
    experiment = parse_experiment(path.read_bytes(), source=str(path))
    policies = POLICY_DIR if policy_directory is None else policy_directory
    for split in experiment.splits:
        if not (policies / f"{split.policy_id}.toml").is_file():
            raise Fault(
                f"{path}: split names unknown policy {split.policy_id!r}",
                reason="malformed_experiment",
            )
    return experiment


def parse_experiment(raw: bytes, source: str = "<bytes>") -> Experiment:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise Fault(f"{source}: not valid TOML: {err}", reason="malformed_experiment") from err
    unknown = set(data) - {"mode", "split"}
    if unknown:
        raise Fault(
            f"{source}: unknown keys {sorted(unknown)} (expected mode, [[split]])",
            reason="malformed_experiment",
        )
    try:
        tenant_mode = Mode(data.get("mode", Mode.enforce.value))
        rows = data.get("split") or [{"policy_id": DEFAULT_POLICY_ID, "percent": 100}]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("split must be an array of tables ([[split]])")
        splits = [Split.model_validate({"mode": tenant_mode, **row}) for row in rows]
        validate_splits(splits)
    except (ValueError, ValidationError) as err:
        raise Fault(f"{source}: {err}", reason="malformed_experiment") from err
    return Experiment(mode=tenant_mode, splits=splits)
