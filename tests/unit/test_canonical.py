"""The one canonical JSON: RFC 8785 bytes, pydantic models included, nothing coerced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from signgate.canonical import canonical_json
from signgate.errors import BadInput
from signgate.models import ArtifactKind, CaptureMetadata


def test_keys_sorted_no_whitespace_es6_numbers() -> None:
    assert canonical_json({"b": [1.0, 2.5e-7], "a": "é", "A": None}) == (
        b'{"A":null,"a":"\xc3\xa9","b":[1,2.5e-7]}'
    )


def test_pydantic_models_are_dumped_in_json_mode_also_when_nested() -> None:
    capture = CaptureMetadata(
        challenge_nonce="n", captured_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    expected = (
        b'{"captured_at":"2024-01-02T03:04:05Z","challenge_nonce":"n",'
        b'"device_signals":{},"scenario":null}'
    )
    assert canonical_json(capture) == expected
    assert canonical_json({"c": [capture], "k": ArtifactKind.selfie}) == (
        b'{"c":[' + expected + b'],"k":"selfie"}'
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**60, object()])
def test_values_without_an_exact_json_form_are_refused(value: object) -> None:
    with pytest.raises(BadInput) as err:
        canonical_json({"x": value})
    assert err.value.reason == "json_not_canonical"
