"""The reviewer console's pages: login, the queue, a session, its media, a review.

Server-rendered (Jinja2, autoescaped) and script-free. Every console response is
`Cache-Control: no-store` and framed by a strict CSP; media are reachable only through
short-lived signed links minted while rendering the session page for a logged-in reviewer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.console import views
from gateway.console.evidence import latest_artifacts
from gateway.console.heatmaps import heatmap_refs
from gateway.console.login import (
    MEDIA_TTL_S,
    Reviewer,
    console_of,
    current_reviewer,
    log_in,
    log_out,
)
from gateway.console.media import IMAGE_KINDS, VIDEO_KINDS, media_response, video_frames
from gateway.errors import Refusal
from gateway.onboarding import REVIEW_STAGES
from gateway.routes_sessions import SessionId
from gateway.state import Gateway, bind_session, gateway_of
from signgate.envelope import EvidenceErased
from signgate.evidence import EvidenceMissing
from signgate.models import ArtifactKind, ArtifactRef, CheckResult, ReviewInput

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = lambda at: at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
templates.env.filters["score"] = lambda v: "-" if v is None else f"{v:.2f}"

router = APIRouter(prefix="/console", include_in_schema=False)

NOTICES = {
    "approved": "Your approval is recorded.",
    "rejected": "Your rejection is recorded.",
    "step_up": "Your step-up request is recorded: the person is asked for a fresh capture.",
}
DONE = {"approve": "approved", "reject": "rejected", "step_up": "step_up"}
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def to_login() -> Response:
    return RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)


@router.get("")
async def home() -> Response:
    return RedirectResponse("/console/queue", status_code=303, headers=SECURITY_HEADERS)


@router.get("/static/console.css")
async def stylesheet() -> Response:
    css = (HERE / "static" / "console.css").read_text()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})


@router.get("/login")
async def login_form(request: Request) -> Response:
    return page(request, "login.html", reviewer=current_reviewer(request))


@router.post("/login")
async def login(request: Request, api_key: Annotated[str, Form(max_length=512)] = "") -> Response:
    response = RedirectResponse("/console/queue", status_code=303, headers=SECURITY_HEADERS)
    try:
        log_in(request, response, api_key)
    except Refusal as refusal:
        return page(
            request, "login.html", refusal.http_status, reviewer=None, error=refusal.message
        )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = to_login()
    log_out(response)
    return response


@router.get("/queue")
async def queue(request: Request, gateway: GatewayDep) -> Response:
    reviewer = current_reviewer(request)
    if reviewer is None:
        return to_login()
    items = await gateway.sessions.awaiting_review()
    now = datetime.now(UTC)
    sla_s = gateway.settings.timeouts.review_sla_s
    rows = [
        {
            "item": item,
            "age": views.human(now - item.start_time),
            "sla_left": views.human(views.sla_left(item.start_time, sla_s, now)),
            "overdue": views.sla_left(item.start_time, sla_s, now).total_seconds() < 0,
        }
        for item in items
    ]
    return page(request, "queue.html", reviewer=reviewer, rows=rows)


@router.get("/sessions/{session_id}")
async def session_page(
    session_id: SessionId, request: Request, gateway: GatewayDep, notice: str | None = None
) -> Response:
    reviewer = current_reviewer(request)
    if reviewer is None:
        return to_login()
    shown = NOTICES.get(notice or "")
    return await render_session(request, gateway, reviewer, session_id, notice=shown)


async def render_session(
    request: Request,
    gateway: Gateway,
    reviewer: Reviewer,
    session_id: str,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    bind_session(session_id)
    await gateway.sessions.tenant_of(session_id)  # 404 unless an onboarding session
    status = await gateway.sessions.status(session_id)
    artifacts = await latest_artifacts(gateway.temporal, session_id)
    policy = views.policy_view(status.decision)
    media = await _media_links(request, gateway, session_id, artifacts)
    return page(
        request,
        "session.html",
        status_code,
        reviewer=reviewer,
        status=status,
        media=media,
        heatmaps=_heatmap_links(request, session_id, status.checks),
        policy=policy,
        rows=views.check_rows(status.checks, policy.loaded if policy else None),
        four_eyes=views.four_eyes(status),
        reviewable=status.stage in REVIEW_STAGES,
        **extra,
    )


async def _media_links(
    request: Request, gateway: Gateway, session_id: str, artifacts: dict[ArtifactKind, ArtifactRef]
) -> list[dict[str, str]]:
    """(label, signed URL) for each still and key frame the reviewer may look at."""
    signer = console_of(request).signer

    def link(ref: ArtifactRef, variant: str) -> str:
        claims = {"sid": session_id, "sha": ref.sha256, "key": ref.object_key, "v": variant}
        return f"/console/media/{signer.sign('media', MEDIA_TTL_S, claims)}"

    links = [
        {"label": kind.value.replace("_", " "), "url": link(artifacts[kind], "raw")}
        for kind in IMAGE_KINDS
        if kind in artifacts
    ]
    for kind in VIDEO_KINDS:
        if kind not in artifacts:
            continue
        ref = artifacts[kind]
        try:
            frames = await asyncio.to_thread(
                video_frames, gateway.store, console_of(request).frames, ref.object_key
            )
        except EvidenceMissing:
            links.append({"label": "liveness video: missing from the evidence store", "url": ""})
            continue
        except EvidenceErased:
            links.append({"label": "liveness video: erased", "url": ""})
            continue
        links += [
            {"label": f"liveness frame {n + 1}", "url": link(ref, f"frame:{n}")}
            for n in range(len(frames))
        ]
        if not frames:
            links.append({"label": "liveness video: no frame could be decoded", "url": ""})
    return links


def _heatmap_links(
    request: Request, session_id: str, checks: list[CheckResult]
) -> list[dict[str, str]]:
    """(label, signed URL) for each heatmap the session's checks name: the same short-lived
    links as the photos; the variant makes the media route re-hash the bytes it serves."""
    signer = console_of(request).signer
    return [
        {
            "label": ref.label,
            "url": "/console/media/"
            + signer.sign(
                "media",
                MEDIA_TTL_S,
                {"sid": session_id, "sha": ref.sha256, "key": ref.object_key, "v": "heatmap"},
            ),
        }
        for ref in heatmap_refs(checks, session_id)
    ]


@router.get("/media/{token}")
async def media(token: str, request: Request, gateway: GatewayDep) -> Response:
    if current_reviewer(request) is None:
        raise Refusal(401, "console_login_required", "log in to the console first")
    claims = console_of(request).signer.verify("media", token)
    response = await media_response(gateway.store, console_of(request).frames, claims)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.post("/sessions/{session_id}/review")
async def review(
    session_id: SessionId,
    request: Request,
    gateway: GatewayDep,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    reviewer = current_reviewer(request)
    if reviewer is None:
        return to_login()
    if not reviewer.csrf_ok(csrf):
        raise Refusal(403, "console_csrf_invalid", "reload the page and try again")
    reason = reason.strip()
    if decision not in DONE or len(reason) < 3:
        return await render_session(
            request,
            gateway,
            reviewer,
            session_id,
            422,
            error="choose approve, reject or step-up and give a reason (at least 3 characters)",
        )
    answer = ReviewInput(
        reviewer_id=reviewer.principal,
        role=reviewer.role,
        approve=decision == "approve",
        step_up=decision == "step_up",
        reason=reason,
    )
    try:
        await gateway.sessions.review(session_id, answer)
    except Refusal as refusal:
        return await render_session(
            request, gateway, reviewer, session_id, refusal.http_status, error=refusal.message
        )
    return RedirectResponse(
        f"/console/sessions/{session_id}?notice={DONE[decision]}",
        status_code=303,
        headers=SECURITY_HEADERS,
    )
