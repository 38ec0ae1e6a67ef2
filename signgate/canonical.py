"""The one canonical JSON of signgate (RFC 8785, JSON Canonicalization Scheme).

Everything we hash or sign (ledger entries, seal stamps, attestation payloads, webhook
bodies) goes through `canonical_json`, so the same value always gives the same bytes in
every process, language and library version, and a verifier elsewhere can recompute them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rfc8785
from pydantic import BaseModel

from signgate.errors import BadInput


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of `value`: a pydantic model, or JSON-native dicts/lists/scalars.

    Pydantic models (also nested inside dicts and lists) are dumped with `mode="json"`, so
    datetimes, enums and nested models take the same JSON form as at any other boundary.
    Anything JCS cannot represent exactly (NaN, infinities, integers beyond +-2**53,
    non-string keys, arbitrary objects) is refused as `BadInput`, never coerced: a value
    that cannot be canonicalized cannot be verified later.
    """
    try:
        return rfc8785.dumps(_plain(value))
    except rfc8785.CanonicalizationError as err:
        raise BadInput(
            f"value has no canonical JSON form: {err}", reason="json_not_canonical"
        ) from err


def _plain(value: Any) -> Any:
    """Replace pydantic models by their JSON dump; leave everything else to rfc8785."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
