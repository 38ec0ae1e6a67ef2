"""Prometheus metrics: what ops watch on a dashboard.

One process-wide registry. In the embedded stack the worker runs inside the gateway's
process, so `GET /metrics` on the gateway shows both. A worker running as its own process
(`signgate worker`) does not expose its metrics yet: that is scale-out work.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "signgate_decisions_total",
    "Decisions committed to the audit ledger, by action, risk tier and mode.",
    ["action", "tier", "mode"],
)
CHECK_LATENCY = Histogram(
    "signgate_check_latency_seconds",
    "Time a check took to answer (synchronous answers only), by kind, provider and status.",
    ["kind", "provider", "status"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_REJECTIONS = Counter(
    "signgate_webhook_rejections_total",
    "Inbound vendor webhooks refused, by reason code.",
    ["reason"],
)
REVIEW_QUEUE_DEPTH = Gauge(
    "signgate_review_queue_depth", "Sessions awaiting review or escalated (at scrape time)."
)
REVIEW_QUEUE_OLDEST_AGE = Gauge(
    "signgate_review_queue_oldest_age_seconds",
    "Age of the oldest session still awaiting review (at scrape time; 0 if none).",
)
