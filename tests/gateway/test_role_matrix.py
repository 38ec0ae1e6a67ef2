"""The whole role x endpoint matrix, over real HTTP, including every refusal.

Each row is one endpoint; each column a caller. A cell says what the caller hears: an
"admitted" status (the call got past authentication, role and tenant checks, and then
did or refused its work for its own reasons), or the refusal with its reason code. The
summary of each route in the OpenAPI schema states its roles; the test holds the stated
roles to the ones the matrix admits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.gateway.conftest import (
    ADMIN_KEY,
    APP_KEY,
    OPS_KEY,
    OTHER_TENANT_APP_KEY,
    REVIEWER_KEY,
    REVOKED_KEY,
    SENIOR_KEY,
    GatewayStack,
)
from tests.support import jpeg_bytes

CALLERS: dict[str, str | None] = {
    "app": APP_KEY,
    "other_tenant_app": OTHER_TENANT_APP_KEY,
    "reviewer": REVIEWER_KEY,
    "senior_reviewer": SENIOR_KEY,
    "ops": OPS_KEY,
    "admin": ADMIN_KEY,
    "no_key": None,
    "invalid_key": "sg_not-a-key-anyone-was-given",
    "revoked_key": REVOKED_KEY,
}
ROLE_COLUMNS = ("app", "reviewer", "senior_reviewer", "ops", "admin")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {sid} is the matrix's session (tenant "demo", awaiting capture)
    admitted: dict[str, tuple[int, str | None]]  # caller -> (status, reason) when admitted

    @property
    def route(self) -> str:
        """The path as the OpenAPI schema names it."""
        return self.path.replace("{sid}", "{session_id}").replace("/selfie", "/{kind}")

    def request(self, sid: str) -> dict[str, Any]:
        url = self.path.format(sid=sid)
        if self.method == "POST" and url == "/v1/sessions":
            return {"json": {"subject_ref": "user-7", "intent": "sign:nda"}}
        if url.endswith("/submit"):
            ghost = hashlib.sha256(b"never uploaded").hexdigest()
            ref = {"kind": "selfie", "sha256": ghost, "object_key": f"sha256/{ghost}"}
            ref.update(size_bytes=1, content_type="image/jpeg")
            return {"json": {"artifacts": [ref], "capture": {"challenge_nonce": "n"}}}
        if url.endswith("/upload-url"):
            return {"json": {"sha256": hashlib.sha256(b"x").hexdigest(), "size_bytes": 1}}
        if url.endswith("/review"):
            return {"json": {"approve": True, "reason": "looks right"}}
        if self.method == "PUT":
            data = jpeg_bytes("matrix")
            return {
                "content": data,
                "headers": {
                    "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
                    "Content-Type": "image/jpeg",
                },
            }
        return {}


# Admitted answers: what each allowed role hears from this endpoint for the matrix session.
MATRIX: tuple[Endpoint, ...] = (
    Endpoint("POST", "/v1/sessions", {"app": (201, None)}),
    Endpoint(
        "GET",
        "/v1/sessions/{sid}",
        {role: (200, None) for role in ROLE_COLUMNS},
    ),
    Endpoint("PUT", "/v1/sessions/{sid}/evidence/selfie", {"app": (201, None)}),
    # This stack keeps evidence on local disk, so the admitted app hears why there is no URL.
    Endpoint(
        "POST",
        "/v1/sessions/{sid}/evidence/selfie/upload-url",
        {"app": (409, "direct_upload_unsupported")},
    ),
    # The ghost artifact is refused after access was granted: nothing is signalled.
    Endpoint("POST", "/v1/sessions/{sid}/submit", {"app": (422, "evidence_missing")}),
    Endpoint("GET", "/v1/sessions/{sid}/attestation", {"app": (409, "not_unlocked")}),
    Endpoint(
        "GET",
        "/v1/reviews",
        {role: (200, None) for role in ("reviewer", "senior_reviewer", "ops", "admin")},
    ),
    # Admitted reviewers hear the workflow validator: this session is not in review.
    Endpoint(
        "POST",
        "/v1/sessions/{sid}/review",
        {r: (409, "review_refused") for r in ("reviewer", "senior_reviewer")},
    ),
)
TENANT_SCOPED = {e.path for e in MATRIX if "{sid}" in e.path}


def expected(endpoint: Endpoint, caller: str) -> tuple[int, str | None]:
    if caller == "no_key":
        return 401, "api_key_missing"
    if caller == "invalid_key":
        return 401, "api_key_invalid"
    if caller == "revoked_key":
        return 401, "api_key_revoked"
    if caller == "other_tenant_app":
        if "app" not in endpoint.admitted:
            return 403, "role_forbidden"
        if endpoint.path in TENANT_SCOPED:
            # 404, not 403: another tenant must not learn that the session exists.
            return 404, "session_not_found"
        return endpoint.admitted["app"]
    return endpoint.admitted.get(caller, (403, "role_forbidden"))


CELLS = [(e, c) for e in MATRIX for c in CALLERS]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix_session(gw: GatewayStack) -> AsyncIterator[str]:
    created = await gw.create_session()
    yield str(created["session_id"])


@pytest.mark.parametrize(
    ("endpoint", "caller"), CELLS, ids=[f"{e.method} {e.path} as {c}" for e, c in CELLS]
)
async def test_role_matrix(
    gw: GatewayStack, matrix_session: str, endpoint: Endpoint, caller: str
) -> None:
    want_status, want_reason = expected(endpoint, caller)
    async with gw.http(CALLERS[caller]) as http:
        response = await http.request(
            endpoint.method,
            endpoint.path.format(sid=matrix_session),
            **endpoint.request(matrix_session),
        )
    assert response.status_code == want_status, response.text
    if want_reason is not None:
        assert response.json()["error"]["reason"] == want_reason
    if want_status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_route_states_the_roles_the_matrix_admits(gw: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        schema = (await http.get("/openapi.json")).json()
    for endpoint in MATRIX:
        operation = schema["paths"][endpoint.route]
        summary = operation[endpoint.method.lower()]["summary"]
        stated = set(re.findall(r"\b(app|reviewer|senior_reviewer|ops|admin)\b", summary))
        assert stated == set(endpoint.admitted), (endpoint.path, summary)


async def test_matrix_covers_every_session_and_review_route(gw: GatewayStack) -> None:
    """A new route under these prefixes needs a matrix row before it ships."""
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        schema = (await http.get("/openapi.json")).json()
    ours = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith(("/v1/sessions", "/v1/reviews"))
        for method in operations
    }
    assert ours <= {(e.method, e.route) for e in MATRIX}
