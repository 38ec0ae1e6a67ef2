"""One logging setup for every process: structlog to stderr, JSON in prod, console in dev.

Stdout stays free for what a command prints on purpose (`signgate demo --json`).

Every event passes `redact` before it is rendered: no name, document number, image byte
or secret reaches a log line, whatever a caller binds.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "<redacted>"

# Keys whose values never reach a log line (compared case-insensitively, `-` as `_`).
SENSITIVE_KEYS = frozenset(
    {
        # personal data
        "name",
        "full_name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "document_number",
        "id_number",
        "dob",
        "date_of_birth",
        "birth_date",
        "address",
        "email",
        "phone",
        # secrets
        "api_key",
        "x_api_key",
        "authorization",
        "secret",
        "password",
        "token",
        "attestation",
        "signature",
        "private_key",
        "cookie",
        "set_cookie",
        # payloads (media, request bodies)
        "body",
        "content",
        "image",
        "media",
        "data",
        "payload",
    }
)
# Any key ending in one of these is sensitive too (`webhook_secret`, `access_token`, ...).
_SENSITIVE_SUFFIXES = ("_secret", "_secrets", "_token", "_password", "_key", "_signature")

# Structlog's own keys are never redacted by name.
_PASSTHROUGH = frozenset({"event", "level", "timestamp", "logger", "exc_info", "stack_info"})

_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# A long base64 (or base64url) run: an encoded image, template or key.
_LONG_B64 = re.compile(r"[A-Za-z0-9+/_\-]{200,}={0,2}")
_MAX_DEPTH = 8


def _is_sensitive(key: object) -> bool:
    if not isinstance(key, str):
        return False
    k = key.strip().lower().replace("-", "_")
    return k in SENSITIVE_KEYS or k.endswith(_SENSITIVE_SUFFIXES)


def _scrub_str(value: str) -> str:
    value = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    return _LONG_B64.sub(lambda m: f"<{len(m.group(0))} chars redacted>", value)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value) if not isinstance(value, memoryview) else value.nbytes} bytes>"
    if isinstance(value, str):
        return _scrub_str(value)
    if depth >= _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_sensitive(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Anything else (a pydantic model, an exception, a path) is rendered by repr/str later:
    # scrub that text now, since its fields may hold anything.
    return _scrub_str(str(value))


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: mask sensitive keys (nested too), bytes and secret-looking text."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in _PASSTHROUGH:
            if isinstance(value, str):
                event_dict[key] = _scrub_str(value)
            continue
        event_dict[key] = REDACTED if _is_sensitive(key) else _scrub(value)
    return event_dict


def _current_stderr(*_args: object) -> structlog.PrintLogger:
    """Whatever `sys.stderr` is at the time of the log call, not at configuration: a
    caller that swaps stderr and closes it (click's test runner, pytest's capture) must
    not leave every later log call writing to a closed file."""
    return structlog.PrintLogger(sys.stderr)


def configure_logging(
    *, json_logs: bool = False, level: str = "INFO", stream: TextIO | None = None
) -> None:
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=(
            structlog.PrintLoggerFactory(file=stream) if stream is not None else _current_stderr
        ),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(stream=out, level=max(numeric, logging.WARNING))
