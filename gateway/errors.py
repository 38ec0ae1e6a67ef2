"""One JSON error shape for every refusal: ``{"error": {"reason": ..., "message": ...}}``.

`reason` is the same stable code the log line and the ledger carry; `message` is for a
person. Validation errors never echo the input back: a refused body may hold PII.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from signgate.errors import SigngateError

log = structlog.get_logger("signgate.gateway")


class Refusal(SigngateError):
    """A gateway refusal with its HTTP status chosen where it is raised."""

    def __init__(
        self,
        http_status: int,
        reason: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.http_status = http_status
        self.headers = dict(headers or {})


def session_not_found(session_id: str) -> Refusal:
    # Also what another tenant's key hears: existence of a session is not disclosed.
    return Refusal(404, "session_not_found", f"no session {session_id!r}")


def error_body(reason: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"reason": reason, "message": message}}


def _reason_for_status(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def _signgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SigngateError)
    headers = getattr(exc, "headers", None)
    level = log.warning if exc.http_status >= 500 else log.info
    level("request_refused", reason=exc.reason, status=exc.http_status)
    return JSONResponse(
        error_body(exc.reason, exc.message), status_code=exc.http_status, headers=headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe(error) for error in exc.errors()[:10]]
    message = "; ".join(problems) or "request is invalid"
    return JSONResponse(error_body("request_invalid", message), status_code=422)


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


async def _http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict) and "reason" in detail:
        reason, message = str(detail["reason"]), str(detail.get("message", ""))
    else:
        reason, message = _reason_for_status(exc.status_code), str(detail)
    return JSONResponse(
        error_body(reason, message), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("request_crashed", error_type=type(exc).__name__)
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SigngateError, _signgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
