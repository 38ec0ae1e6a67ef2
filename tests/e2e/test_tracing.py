"""One onboarding session is one trace: gateway request, workflow run, activities, vendor call.

The real dev server, a real worker, the gateway over HTTP and the bundled vendor sandbox,
as in tests/gateway; spans go to an in-memory exporter added to the process's provider.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client

from signgate.models import Stage
from signgate.payload_codec import codec_for
from signgate.settings import Settings
from signgate.tracing import OTLP_ENDPOINT_ENV, configure_tracing
from tests.conftest import RunningDevServer
from tests.gateway.conftest import APP_KEY, GatewayStack, gateway_stack
from workers.client import connect_client


class Traced:
    def __init__(self, stack: GatewayStack, provider: TracerProvider, spans: InMemorySpanExporter):
        self.stack = stack
        self.provider = provider
        self.exporter = spans

    def spans(self) -> tuple[ReadableSpan, ...]:
        self.provider.force_flush()
        return self.exporter.get_finished_spans()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced(
    dev_server: RunningDevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("signgate-test", exporter=exporter)

    async def traced_client(settings: Settings) -> Client:
        # The client as every process makes it: pydantic converter + tracing interceptor.
        return await connect_client(dev_server.address, payload_codec=codec_for(settings))

    async with gateway_stack(
        dev_server, tmp_path_factory.mktemp("tracing") / "var", make_client=traced_client
    ) as stack:
        yield Traced(stack, provider, exporter)


def _attr(span: ReadableSpan, *keys: str) -> object:
    attrs = span.attributes or {}
    for key in keys:
        if key in attrs:
            return attrs[key]
    return None


@pytest.mark.asyncio(loop_scope="session")
async def test_one_session_is_one_trace_from_gateway_to_vendor(traced: Traced) -> None:
    gw = traced.stack
    created = await gw.create_session()
    sid = created["session_id"]
    await gw.capture(sid, created["challenge_nonce"], "bona_fide")
    status = await gw.wait_for_stage(sid, Stage.accepted, Stage.rejected)
    assert status.stage is Stage.accepted

    spans = traced.spans()
    # The request that created the session is the root of the session's trace.
    create = [
        s
        for s in spans
        if s.kind is SpanKind.SERVER
        and s.parent is None
        and _attr(s, "http.route") == "/v1/sessions"
        and _attr(s, "http.request.method", "http.method") == "POST"
    ]
    assert create, sorted({s.name for s in spans})
    trace_id = create[-1].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}

    assert "StartWorkflow:OnboardingWorkflow" in names, names
    assert "RunWorkflow:OnboardingWorkflow" in names, names
    activities = {n.removeprefix("RunActivity:") for n in names if n.startswith("RunActivity:")}
    assert {"seal_evidence", "check_liveness", "check_deepfake", "commit_decision"} <= activities, (
        names
    )
    assert "vendor.submit_check" in names, names
    vendor_http = [
        s
        for s in in_trace
        if s.kind is SpanKind.CLIENT
        and str(_attr(s, "url.full", "http.url") or "").startswith(gw.settings.resolved_vendor_url)
    ]
    assert vendor_http, names
    # The vendor call sits under its check's activity span, not beside it.
    by_id = {s.context.span_id: s for s in in_trace}
    parent = vendor_http[0].parent
    chain = []
    while parent is not None and parent.span_id in by_id:
        chain.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    assert any(n.startswith("RunActivity:check_") for n in chain), chain


@pytest.mark.asyncio(loop_scope="session")
async def test_spans_carry_no_personal_data_or_secrets(traced: Traced) -> None:
    spans = traced.spans()
    assert spans
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = str(value)
            assert "sandbox-key" not in text, (span.name, key)
            assert APP_KEY not in text, (span.name, key)
            assert not key.lower().startswith(("http.request.header", "http.response.header")), key


_PROBE = """
import json, sys
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from signgate.tracing import OTLP_ENDPOINT_ENV, configure_tracing

provider = configure_tracing("signgate-probe")
again = configure_tracing("someone-else")
processors = provider._active_span_processor._span_processors
exporters = [p.span_exporter for p in processors]
print(json.dumps({
    "same": provider is again,
    "service": provider.resource.attributes["service.name"],
    "otlp": [e._endpoint for e in exporters if isinstance(e, OTLPSpanExporter)],
    "processors": len(processors),
}))
"""


@pytest.mark.parametrize(
    ("endpoint", "otlp"),
    [(None, []), ("http://127.0.0.1:9/", ["http://127.0.0.1:9/v1/traces"])],
)
def test_otlp_exporter_only_when_the_endpoint_is_set(endpoint: str | None, otlp: list[str]) -> None:
    """One provider per process (first call wins); OTLP/HTTP only with SIGNGATE_OTLP_ENDPOINT.

    In a subprocess: the global provider can be set once per process.
    """
    env = {k: v for k, v in os.environ.items() if k != OTLP_ENDPOINT_ENV}
    if endpoint is not None:
        env[OTLP_ENDPOINT_ENV] = endpoint
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["same"] is True
    assert seen["service"] == "signgate-probe"
    assert seen["otlp"] == otlp
    assert seen["processors"] == len(otlp)
