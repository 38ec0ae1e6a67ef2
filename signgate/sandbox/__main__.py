"""``python -m signgate.sandbox [--host H] [--port P] [--webhook-delay-s S]``: serve the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from signgate.models import CheckKind
from signgate.sandbox.serve import run_sandbox
from signgate.settings import get_settings


def parse_latencies(text: str) -> dict[CheckKind, int]:
    """`liveness=200,deepfake=400` -> {CheckKind.liveness: 200, ...}; an unknown check fails."""
    latencies: dict[CheckKind, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, ms = item.partition("=")
        try:
            latencies[CheckKind(kind.strip())] = int(ms)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"bad latency {item!r}: use check=ms") from err
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m signgate.sandbox",
        description="The bundled vendor sandbox (a test and demo tool; it scores nothing).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: settings.sandbox_port")
    parser.add_argument("--webhook-delay-s", type=float, default=0.5)
    parser.add_argument(
        "--latency-ms",
        type=parse_latencies,
        default={},
        help="fixed per-check latency, e.g. liveness=200,deepfake=400 (benchmarks)",
    )
    parser.add_argument(
        "--hang-s", type=float, default=30.0, help="vendor_hangs answers after this"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_sandbox(
                get_settings(),
                host=args.host,
                port=args.port,
                webhook_delay_s=args.webhook_delay_s,
                latency_ms=args.latency_ms,
                hang_s=args.hang_s,
                log_level=args.log_level,
            )
        )


if __name__ == "__main__":
    main()
