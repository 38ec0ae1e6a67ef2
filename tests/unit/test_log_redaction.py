"""No name, document number, image byte or secret reaches a log line.

Each test logs through the real pipeline `configure_logging` installs (JSON and console
renderers), into a captured stream, and reads the rendered text.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from signgate.logs import configure_logging

NAME = "Ada Lovelace"
DOC_NUMBER = "X1234567Q"
DOB = "1815-12-10"
API_KEY = "sk-live-0123456789abcdef"
WEBHOOK_SECRET = "whsec-topsecret-42"
IMAGE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG-ish blob
IMAGE_B64 = base64.b64encode(IMAGE).decode()

Emit = Callable[..., str]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**config)
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(params=["json", "console"])
def emit(request: pytest.FixtureRequest, restore_logging: None) -> Emit:
    """Log one event at INFO through the configured pipeline and return what was printed."""
    json_logs = request.param == "json"

    def _emit(event: str, **fields: object) -> str:
        stream = io.StringIO()
        configure_logging(json_logs=json_logs, level="INFO", stream=stream)
        structlog.get_logger("test").info(event, **fields)
        out = stream.getvalue()
        assert out, "nothing was logged"
        if json_logs:
            json.loads(out)  # still one valid JSON line
        return out

    return _emit


def assert_absent(out: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in out, f"{secret!r} leaked into {out!r}"


def test_sensitive_top_level_keys_are_masked_and_the_rest_stays(emit: Emit) -> None:
    out = emit(
        "check_failed",
        session_id="ses_abc123",
        reason="vendor_unavailable",
        name=NAME,
        Full_Name=NAME,
        document_number=DOC_NUMBER,
        dob=DOB,
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        attestation="eyJhbGciOiJFZERTQSJ9.payload.sig",
        email="ada@example.org",
    )
    assert_absent(out, NAME, DOC_NUMBER, DOB, API_KEY, WEBHOOK_SECRET, "ada@example.org")
    assert_absent(out, "eyJhbGciOiJFZERTQSJ9")
    assert "ses_abc123" in out
    assert "vendor_unavailable" in out
    assert "check_failed" in out


def test_header_style_keys_are_masked_case_insensitively(emit: Emit) -> None:
    out = emit("request", headers={"X-API-Key": API_KEY, "Authorization": f"Bearer {API_KEY}"})
    assert_absent(out, API_KEY)


def test_bytes_are_never_printed_only_their_length(emit: Emit) -> None:
    out = emit("uploaded", session_id="ses_1", selfie=IMAGE, chunk=bytearray(b"\x00secret\x01"))
    assert f"<{len(IMAGE)} bytes>" in out
    assert "<8 bytes>" in out
    assert_absent(out, "\\xff\\xd8", "secret", IMAGE_B64[:40])


def test_nested_dicts_and_lists_are_redacted(emit: Emit) -> None:
    out = emit(
        "vendor_answer",
        session_id="ses_2",
        result={
            "status": "completed",
            "subject": {"given_name": "Ada", "family_name": "Lovelace", "id_number": DOC_NUMBER},
            "documents": [{"document_number": DOC_NUMBER, "country": "GB"}, IMAGE],
            "tokens": ({"token": API_KEY},),
        },
    )
    assert_absent(out, "Lovelace", DOC_NUMBER, API_KEY, "\\xff\\xd8")
    assert "completed" in out
    assert "GB" in out
    assert f"<{len(IMAGE)} bytes>" in out


def test_secret_looking_strings_are_masked_under_any_key(emit: Emit) -> None:
    out = emit(
        "odd",
        session_id="ses_3",
        detail=f"vendor said: Authorization: Bearer {API_KEY}",
        frame=f"data:image/jpeg;base64,{IMAGE_B64}",
        reason="liveness_failed",
    )
    assert_absent(out, API_KEY, IMAGE_B64[:64], IMAGE_B64[-64:])
    assert "liveness_failed" in out
    assert "Bearer" in out  # the scheme may stay; the credential never does


def test_base64_in_the_event_message_itself_is_masked(emit: Emit) -> None:
    out = emit(f"got {IMAGE_B64}", session_id="ses_4")
    assert_absent(out, IMAGE_B64[:64])
    assert "ses_4" in out


def test_short_ordinary_strings_are_untouched(emit: Emit) -> None:
    out = emit("decided", session_id="ses_5", action="accept", risk_tier="green", ledger_seq=17)
    for kept in ("ses_5", "accept", "green", "17"):
        assert kept in out


def test_bound_context_is_redacted_too(emit: Emit) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-1", authorization=f"Bearer {API_KEY}")
    out = emit("request", status=200)
    assert_absent(out, API_KEY)
    assert "req-1" in out


def test_objects_rendered_by_repr_are_scrubbed(emit: Emit) -> None:
    class Blob:
        def __repr__(self) -> str:
            return f"Blob(token=Bearer {API_KEY}, raw={IMAGE_B64})"

        __str__ = __repr__

    out = emit("blob", thing=Blob())
    assert_absent(out, API_KEY, IMAGE_B64[:64])
