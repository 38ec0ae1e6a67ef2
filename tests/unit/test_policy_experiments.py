"""Policy experiments: stable, evenly spread assignment; strict experiment files; the gateway."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi.exceptions import RequestValidationError

import policies.experiments
from gateway.errors import Refusal
from gateway.routes_sessions import CreateSession, _onboarding_request
from gateway.state import Gateway
from policies.experiments import (
    Split,
    assign_policy,
    load_experiment,
    load_splits,
    parse_experiment,
)
from policies.loader import POLICY_DIR
from signgate.errors import Fault
from signgate.models import Mode
from signgate.settings import ApiKey, Settings

N = 10_000


def split(policy_id: str, percent: float, mode: Mode = Mode.enforce) -> Split:
    return Split(policy_id=policy_id, percent=percent, mode=mode)


AB = [split("default", 70), split("strict", 20), split("lenient", 10, Mode.shadow)]


# --------------------------------------------------------------------------- assignment


def test_same_session_same_assignment() -> None:
    for i in range(200):
        first = assign_policy(f"session-{i:04d}", "acme", AB)
        assert all(assign_policy(f"session-{i:04d}", "acme", AB) == first for _ in range(3))


def test_tenant_is_part_of_the_hash() -> None:
    """The same session id in two tenants is not forced into the same arm."""
    differ = sum(
        assign_policy(f"s-{i:05d}", "acme", AB) != assign_policy(f"s-{i:05d}", "globex", AB)
        for i in range(1000)
    )
    assert differ > 100


def test_distribution_within_tolerance() -> None:
    counts = Counter(assign_policy(f"session-{i:05d}", "acme", AB).policy_id for i in range(N))
    # Binomial sd at p=0.1..0.7 over 10,000 draws is <= 0.5%; 1.5% is ~3 sd.
    for s in AB:
        assert abs(counts[s.policy_id] / N - s.percent / 100) < 0.015, counts


def test_mode_follows_the_split() -> None:
    for i in range(300):
        assigned = assign_policy(f"session-{i:04d}", "acme", AB)
        expected = Mode.shadow if assigned.policy_id == "lenient" else Mode.enforce
        assert assigned.mode is expected


@pytest.mark.parametrize(
    "splits",
    [
        [split("default", 50), split("strict", 40)],
        [split("default", 60), split("strict", 50)],
        [],
    ],
)
def test_percentages_must_sum_to_100(splits: list[Split]) -> None:
    with pytest.raises(ValueError, match="sum to 100|at least one split"):
        assign_policy("session-0001", "acme", splits)


def test_sum_error_names_the_total() -> None:
    with pytest.raises(ValueError, match=r"not 90 \(default=50, strict=40\)"):
        assign_policy("session-0001", "acme", [split("default", 50), split("strict", 40)])


def test_hundredth_resolution() -> None:
    assert assign_policy("s1234567", "t", [split("a", 99.99), split("b", 0.01)]).policy_id
    with pytest.raises(ValueError, match="finer than 0.01"):
        split("a", 33.333)


# --------------------------------------------------------------------------- files


def write(directory: Path, tenant: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{tenant}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("default", "strict"):
        (folder / f"{name}.toml").write_text("")  # existence is all load_splits checks
    return folder


def test_no_file_is_all_default_enforce(tmp_path: Path) -> None:
    assert load_splits("acme", tmp_path) == [split("default", 100)]
    assert load_experiment("../etc", tmp_path).mode is Mode.enforce


def test_file_splits_and_tenant_wide_shadow(tmp_path: Path, policy_dir: Path) -> None:
    write(
        tmp_path,
        "acme",
        'mode = "shadow"\n'
        '[[split]]\npolicy_id = "default"\npercent = 75\n'
        '[[split]]\npolicy_id = "strict"\npercent = 25\nmode = "enforce"\n',
    )
    experiment = load_experiment("acme", tmp_path, policy_dir)
    assert experiment.mode is Mode.shadow
    assert experiment.splits == [split("default", 75, Mode.shadow), split("strict", 25)]


def test_mode_only_file_is_all_default_in_that_mode(tmp_path: Path, policy_dir: Path) -> None:
    write(tmp_path, "acme", 'mode = "shadow"\n')
    assert load_splits("acme", tmp_path, policy_dir) == [split("default", 100, Mode.shadow)]
    for i in range(50):
        assert (
            assign_policy(
                f"session-{i:04d}", "acme", load_splits("acme", tmp_path, policy_dir)
            ).mode
            is Mode.shadow
        )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[split]]\npolicy_id = "default"\npercent = 90\n', "sum to 100"),
        ('[[split]]\npolicy_id = "nope"\npercent = 100\n', "unknown policy 'nope'"),
        ('mode = "loud"\n', "loud"),
        ('[[split]]\npolicy_id = "default"\npercent = 100\nweight = 1\n', "weight"),
        ('modes = "shadow"\n', "unknown keys"),
        ("[[split\n", "not valid TOML"),
    ],
)
def test_malformed_files_fail_loudly(
    tmp_path: Path, policy_dir: Path, text: str, problem: str
) -> None:
    write(tmp_path, "acme", text)
    with pytest.raises(Fault, match=problem) as err:
        load_splits("acme", tmp_path, policy_dir)
    assert err.value.reason == "malformed_experiment"


def test_packaged_policies_are_the_default_policy_dir() -> None:
    assert (POLICY_DIR / "default.toml").is_file()
    assert parse_experiment(b"").splits == [split("default", 100)]


# --------------------------------------------------------------------------- gateway


def request_for(tenant: str, **body: Any) -> Any:
    gateway = cast(Gateway, SimpleNamespace(settings=Settings()))
    key = ApiKey(role="app", principal="app", tenant_id=tenant)
    create = CreateSession(subject_ref="user-42", intent="sign:nda", **body)
    return _onboarding_request(create, key, gateway)


@pytest.fixture
def experiments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    monkeypatch.setattr(policies.experiments, "EXPERIMENTS_DIR", folder)
    return folder


def test_gateway_without_experiment_runs_default_enforce(experiments: Path) -> None:
    request = request_for("acme", session_id="session-0001")
    assert (request.policy_id, request.mode) == ("default", Mode.enforce)


def test_gateway_assignment_decides_what_the_app_leaves_out(experiments: Path) -> None:
    write(experiments, "acme", 'mode = "shadow"\n')
    request = request_for("acme", session_id="session-0001")
    assert (request.policy_id, request.mode) == ("default", Mode.shadow)
    # An explicit mode from the app wins over the assignment.
    request = request_for("acme", session_id="session-0001", mode="enforce")
    assert request.mode is Mode.enforce
    # An explicit, existing policy wins; the tenant-wide mode still applies.
    request = request_for("acme", session_id="session-0001", policy_id="default")
    assert (request.policy_id, request.mode) == ("default", Mode.shadow)


def test_gateway_assignment_is_the_pure_one(experiments: Path) -> None:
    write(
        experiments,
        "acme",
        '[[split]]\npolicy_id = "default"\npercent = 50\nmode = "shadow"\n'
        '[[split]]\npolicy_id = "default"\npercent = 50\n',
    )
    splits = load_splits("acme")
    for i in range(40):
        sid = f"session-{i:04d}"
        request = request_for("acme", session_id=sid)
        assert request.mode is assign_policy(sid, "acme", splits).mode


@pytest.mark.parametrize("policy_id", ["no-such-policy", "../default", "Default"])
def test_gateway_unknown_policy_is_422(experiments: Path, policy_id: str) -> None:
    with pytest.raises(Refusal) as err:
        request_for("acme", session_id="session-0001", policy_id=policy_id)
    assert (err.value.http_status, err.value.reason) == (422, "unknown_policy")


def test_gateway_malformed_experiment_refuses(experiments: Path) -> None:
    write(experiments, "acme", '[[split]]\npolicy_id = "default"\npercent = 90\n')
    with pytest.raises(Fault) as err:
        request_for("acme", session_id="session-0001")
    assert err.value.reason == "malformed_experiment"


def test_gateway_bad_session_id_is_still_a_validation_error(experiments: Path) -> None:
    with pytest.raises(RequestValidationError):
        request_for("acme", session_id="bad id!")
