"""Errors that carry a reason code a person can act on.

The same code appears in the HTTP body, the log line and the ledger, so one grep finds a
failure everywhere it surfaced.
"""

from __future__ import annotations


class SigngateError(Exception):
    """Base error: `reason` is a stable snake_case code, `message` is for humans."""

    reason: str = "signgate_error"
    http_status: int = 400

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class BadInput(SigngateError):
    """The caller sent something we will never accept: do not retry."""

    reason = "bad_input"
    http_status = 422


class Fault(SigngateError):
    """Something on our side or a vendor's failed: retry, then fail safe to review."""

    reason = "fault"
    http_status = 503
