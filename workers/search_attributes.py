"""Registering the onboarding search attributes on a Temporal server.

The typed keys are defined once, in `workflows.search_attributes` (workflow code may
import only models and that module, never `workers`); they are re-exported here so
infrastructure code has one import for keys and registration.

Why registration is code and not only a CLI flag: `temporal server start-dev
--search-attribute` registers only when it creates a fresh database file (a restart on
an existing file ignores new ones), and the time-skipping test server has no such flag.
An attribute that is not registered fails every workflow task that upserts it, in a
retry loop that looks like a hang.
"""

from __future__ import annotations

from collections.abc import Iterable

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from signgate.errors import SigngateError
from workflows.search_attributes import (
    ALL,
    ONBOARDING_STATUS,
    POLICY_VERSION,
    RISK_TIER,
    TENANT_ID,
)

__all__ = [
    "ALL",
    "ONBOARDING_STATUS",
    "POLICY_VERSION",
    "RISK_TIER",
    "TENANT_ID",
    "SearchAttributeConflict",
    "ensure_search_attributes",
    "missing_search_attributes",
]


class SearchAttributeConflict(SigngateError):
    reason = "search_attribute_type_conflict"
    http_status = 503


async def missing_search_attributes(
    client: Client, keys: Iterable[SearchAttributeKey] = ALL
) -> list[SearchAttributeKey]:
    """The keys not registered on the client's namespace; a wrong type is an error.

    Raises RPCError(UNIMPLEMENTED) on the time-skipping test server, which cannot list.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    known = {**listed.system_attributes, **listed.custom_attributes}
    missing = []
    for key in keys:
        have = known.get(key.name)
        if have is None:
            missing.append(key)
        elif int(have) != int(key.indexed_value_type):
            raise SearchAttributeConflict(
                f"search attribute {key.name} is registered on namespace "
                f"{client.namespace!r} as {IndexedValueType.Name(have)}, expected "
                f"{key.indexed_value_type.name}: remove it or use a fresh server database"
            )
    return missing


async def ensure_search_attributes(
    client: Client, keys: Iterable[SearchAttributeKey] = ALL
) -> None:
    """Register whichever of `keys` the client's namespace lacks (idempotent)."""
    keys = list(keys)
    try:
        missing = await missing_search_attributes(client, keys)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        # The time-skipping test server cannot list search attributes, and refuses a
        # whole batch if one exists: add them one by one, "already exists" is success.
        for key in keys:
            await _add(client, [key])
        return
    if missing:
        await _add(client, missing)


async def _add(client: Client, keys: list[SearchAttributeKey]) -> None:
    request = AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={
            key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in keys
        },
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as err:
        # Already there (registered by someone else since we looked): same outcome.
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
