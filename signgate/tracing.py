"""One tracing setup for every process: an OpenTelemetry TracerProvider, exported over
OTLP/HTTP when `SIGNGATE_OTLP_ENDPOINT` is set, and exported nowhere otherwise (spans are
still made, so trace ids propagate, but nothing leaves the process: no network).

How one onboarding session becomes one trace:

- the gateway's FastAPI app is instrumented (`instrument_gateway`): a server span per request;
- every Temporal client comes from `workers.client.connect_client`, which installs
  Temporal's `TracingInterceptor`: starting/signalling a workflow carries the caller's
  span in the Temporal headers, and the worker built on that client (workers inherit the
  client's interceptors) opens the workflow run and activity spans under it;
- the vendor adapter's httpx client is instrumented (`instrument_httpx_client`): a client
  span per vendor HTTP call, under the activity span (and the `vendor.submit_check` span).

Span attributes never carry personal data: session ids, check kinds and status codes only.
"""

from __future__ import annotations

import threading

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from signgate.settings import Settings

OTLP_ENDPOINT_ENV = "SIGNGATE_OTLP_ENDPOINT"
# Health probes would drown the traces; their spans are not made.
_EXCLUDED_URLS = "healthz"

_lock = threading.Lock()


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install (once per process) the global TracerProvider and return it.

    The first call names the service and, if `SIGNGATE_OTLP_ENDPOINT` is set, adds the
    OTLP/HTTP exporter. Any call may add one more `exporter` (tests pass an in-memory one).
    Later calls never replace the provider: OpenTelemetry allows one global per process,
    and `signgate dev` runs the gateway and the worker in the same one.
    """
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
            endpoint = (Settings().otlp_endpoint or "").strip()
            if endpoint:
                provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(endpoint)))
            trace.set_tracer_provider(provider)
        if exporter is not None:
            # Batched even in tests: a span must never be exported on the event loop's time.
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return provider


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (for log lines), or None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # `endpoint` is the collector's base URL (http://collector:4318); the traces path is ours.
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return OTLPSpanExporter(endpoint=url)


def instrument_gateway(app: FastAPI) -> None:
    """A server span per request (route template as its name; no query, no body)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def instrument_httpx_client(client: httpx.AsyncClient) -> None:
    """A client span per request made with `client`, and `traceparent` on the wire."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)
