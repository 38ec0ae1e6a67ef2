"""The one place a Temporal client is made.

Our payloads are pydantic v2 models, so every client (and every worker built on one)
must use the pydantic data converter; the default converter would turn models into
plain dicts and lose their types on the way back.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from signgate.errors import Fault


class TemporalUnreachable(Fault):
    reason = "temporal_unreachable"


async def connect_client(address: str, namespace: str = "default") -> Client:
    try:
        return await Client.connect(
            address, namespace=namespace, data_converter=pydantic_data_converter
        )
    except RuntimeError as err:
        raise TemporalUnreachable(
            f"cannot reach the Temporal frontend at {address} (namespace {namespace}): "
            "start `signgate dev` or set SIGNGATE_TEMPORAL_ADDRESS"
        ) from err
