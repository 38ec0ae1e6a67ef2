"""The one place a Temporal client is made.

Our payloads are pydantic v2 models, so every client (and every worker built on one)
must use the pydantic data converter; the default converter would turn models into
plain dicts and lose their types on the way back.

Every client also carries Temporal's OpenTelemetry `TracingInterceptor` unless told
otherwise: starting or signalling a workflow passes the caller's span in the Temporal
headers, and a worker built on the client (workers inherit the client's interceptors)
opens the workflow run and activity spans in that same trace. With no tracer provider
configured (`signgate.tracing.configure_tracing`) the spans are no-ops.

Every payload is encrypted on the way out and decrypted on the way in by our AES-GCM
payload codec (`signgate.payload_codec`), so Temporal's history holds no applicant data in
clear. `data_converter()` is the one converter: clients, workers (they inherit it from their
client), the test servers and the replayer all use it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from signgate.errors import Fault
from signgate.payload_codec import codec_for
from signgate.settings import get_settings


class TemporalUnreachable(Fault):
    reason = "temporal_unreachable"


def default_interceptors() -> list[Interceptor]:
    return [TracingInterceptor()]


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """The pydantic converter with our payload codec (`None`: no encryption, for a reader
    that must see what the server stores)."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def decode_payloads(
    source: Client | DataConverter,
    payloads: Payloads | Sequence[Payload],
    type_hint: type | None = None,
) -> Any:
    """The first value `payloads` hold, as `type_hint` (None: plain JSON values), or None
    when they hold none (an input or result that was nothing).

    History payloads are stored as the codec wrote them (encrypted), so they are read
    through a converter that carries it: a client's own, or `data_converter(codec)`. The
    one way every history reader (ops show, deliveries, the console, the bench twin) does it.
    """
    converter = source.data_converter if isinstance(source, Client) else source
    items = list(payloads.payloads) if isinstance(payloads, Payloads) else list(payloads)
    if not items:
        return None
    return (await converter.decode(items, None if type_hint is None else [type_hint]))[0]


async def connect_client(
    address: str,
    namespace: str = "default",
    *,
    interceptors: Sequence[Interceptor] | None = None,
    payload_codec: PayloadCodec | None = None,
) -> Client:
    """Connect with the pydantic converter and the payload codec; `interceptors=None` means
    the tracing one, `interceptors=()` none at all. `payload_codec=None` means the codec of
    this process's settings (`codec_for(get_settings())`): a client never goes without
    encryption by omission."""
    codec = payload_codec if payload_codec is not None else codec_for(get_settings())
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            data_converter=data_converter(codec),
            interceptors=default_interceptors() if interceptors is None else interceptors,
        )
    except RuntimeError as err:
        raise TemporalUnreachable(
            f"cannot reach the Temporal frontend at {address} (namespace {namespace}): "
            "start `signgate dev` or set SIGNGATE_TEMPORAL_ADDRESS"
        ) from err


async def settle_sdk_threads() -> None:
    """Call before a CLI process exits. The SDK's Rust threads drop their last Python
    references just after a client goes; if the interpreter is already finalizing,
    CPython aborts the process (temporalio/sdk-python#300). A moment's wait avoids it."""
    await asyncio.sleep(0.1)
