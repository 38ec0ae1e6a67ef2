"""The remote payload codec (`/codec/encode`, `/codec/decode`), for ops only.

Temporal's history holds our payloads encrypted (`signgate.payload_codec`). The Temporal
Web UI and CLI show them decrypted by POSTing them here, in Temporal's remote codec
protocol: a body `{"payloads": [{"metadata": {k: base64}, "data": base64}, ...]}` (the
proto3 JSON of `temporal.api.common.v1.Payloads`), answered in the same shape.

Decrypting applicant data is an ops privilege, so every call needs an ops API key
(`X-API-Key` or `Authorization: Bearer`); an app or reviewer key is refused with 403. The
UI runs on another origin, so this sub-app (and only it) answers CORS for the UI's
origins; the preflight carries no key and grants nothing by itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf.json_format import MessageToJson, Parse, ParseError
from temporalio.api.common.v1 import Payload, Payloads

from gateway.auth import require
from gateway.errors import Refusal, install_error_handlers
from gateway.state import Gateway
from signgate.payload_codec import codec_for
from signgate.settings import ApiKey, Settings

OpsKey = Annotated[ApiKey, Depends(require("ops"))]
MAX_BODY_BYTES = 4 * 1024 * 1024  # Temporal's default payload size limit is 2 MiB


def ui_origins(settings: Settings) -> list[str]:
    """The origins the Temporal UI is served from (the dev server's UI port)."""
    port = settings.temporal_ui_port
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


def codec_app(gateway: Gateway) -> FastAPI:
    """A sub-app for `app.mount("/codec", ...)`, with its own CORS policy."""
    codec = codec_for(gateway.settings)
    app = FastAPI(title="signgate remote codec", openapi_url=None, docs_url=None)
    app.state.gateway = gateway  # `require` finds the settings here
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=ui_origins(gateway.settings),
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization", "X-API-Key"],
        allow_credentials=True,
    )

    @app.post("/encode")
    async def encode(request: Request, _: OpsKey) -> Response:
        payloads = await _payloads(request)
        return _answer(await codec.encode(list(payloads.payloads)))

    @app.post("/decode")
    async def decode(request: Request, _: OpsKey) -> Response:
        # An unknown key id or a failed authentication answers with its own reason.
        payloads = await _payloads(request)
        return _answer(await codec.decode(list(payloads.payloads)))

    return app


async def _payloads(request: Request) -> Payloads:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise Refusal(413, "codec_body_too_large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        return Parse(body, Payloads())
    except ParseError as err:
        raise Refusal(400, "codec_request_invalid", f"not Temporal Payloads JSON: {err}") from err


def _answer(payloads: list[Payload]) -> Response:
    return Response(MessageToJson(Payloads(payloads=payloads)), media_type="application/json")
