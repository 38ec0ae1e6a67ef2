"""A cap on every request body except media uploads, so a huge JSON body is refused early.

JSON calls are POSTs (and the odd PATCH/DELETE); media goes up with PUT, where the upload
route enforces its own per-kind caps while streaming. A capped body is read here in full
(it is small by definition) and handed to the app from memory.
"""

from __future__ import annotations

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body

log = structlog.get_logger("signgate.gateway")

UNCAPPED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in UNCAPPED_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                # Read (and drop) a bounded rest first, so a client still sending hears
                # the 413 instead of a reset connection.
                await _drain(receive, more, limit=16 * self.max_bytes)
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("request_refused", reason="request_too_large", status=413)
        response = JSONResponse(
            error_body(
                "request_too_large", f"request bodies are limited to {self.max_bytes} bytes"
            ),
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


async def _drain(receive: Receive, more: bool, limit: int) -> None:
    drained = 0
    while more and drained <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        drained += len(message.get("body", b""))
        more = message.get("more_body", False)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over `body` once, then defers to the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
