"""The reviewer API: the review queue and a reviewer's decision (the workflow's `review` Update).

The gateway authenticates the reviewer; the workflow's validator decides whether this
reviewer may decide this session now (role, four eyes, stage) and says why not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import require
from gateway.onboarding import ReviewQueueItem
from gateway.routes_sessions import SessionId
from gateway.state import Gateway, bind_session, gateway_of
from signgate.models import ReviewerRole, ReviewInput, ReviewOutcome
from signgate.settings import ApiKey

router = APIRouter(prefix="/v1", tags=["reviews"])

GatewayDep = Annotated[Gateway, Depends(gateway_of)]


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(min_length=3, max_length=2000)


@router.get("/reviews")
async def review_queue(
    _: Annotated[ApiKey, Depends(require("reviewer", "senior_reviewer", "ops"))],
    gateway: GatewayDep,
) -> list[ReviewQueueItem]:
    return await gateway.sessions.awaiting_review()


@router.post("/sessions/{session_id}/review")
async def review_session(
    session_id: SessionId,
    body: ReviewBody,
    key: Annotated[ApiKey, Depends(require("reviewer", "senior_reviewer"))],
    gateway: GatewayDep,
) -> ReviewOutcome:
    bind_session(session_id)
    review = ReviewInput(
        reviewer_id=key.principal,
        role=ReviewerRole(key.role),
        approve=body.approve,
        reason=body.reason,
    )
    return await gateway.sessions.review(session_id, review)
