"""The reviewer API: the review queue and a reviewer's answer (the workflow's `review` Update).

The gateway authenticates the reviewer and passes the role its key holds (never one the
caller claims); `Sessions.review` refuses a reviewer deciding their own onboarding, for the
console too. The workflow's validator decides whether this reviewer may decide this
session now (roster, four eyes, stage, the one step-up) and says why not. The workflow
writes every review to the ledger, naming the reviewer, before it can move the session.
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.auth import require
from gateway.onboarding import ReviewQueueItem
from gateway.routes_sessions import SessionId
from gateway.state import Gateway, bind_session, gateway_of
from signgate.api_keys import Caller
from signgate.models import ReviewInput, ReviewOutcome

router = APIRouter(prefix="/v1", tags=["reviews"])

GatewayDep = Annotated[Gateway, Depends(gateway_of)]
QUEUE_ROLES = ("reviewer", "senior_reviewer", "ops", "admin")
REVIEW_ROLES = ("reviewer", "senior_reviewer")


class ReviewBody(BaseModel):
    """A verdict (`approve`: true or false) or a request for a fresh capture
    (`step_up`: true, without `approve`), always with a reason."""

    model_config = ConfigDict(extra="forbid")

    approve: bool | None = None
    step_up: bool = False
    reason: str = Field(min_length=3, max_length=2000)

    @model_validator(mode="after")
    def _one_answer(self) -> Self:
        if self.step_up and self.approve is not None:
            raise ValueError("send either approve or step_up: true, not both")
        if not self.step_up and self.approve is None:
            raise ValueError("approve (true or false) is required, or step_up: true")
        return self


@router.get("/reviews", summary="The review queue. Roles: reviewer, senior_reviewer, ops, admin")
async def review_queue(
    _: Annotated[Caller, Depends(require(*QUEUE_ROLES))],
    gateway: GatewayDep,
) -> list[ReviewQueueItem]:
    return await gateway.sessions.awaiting_review()


@router.post(
    "/sessions/{session_id}/review",
    summary=(
        "Approve, reject or request a step-up of a session in review."
        " Roles: reviewer, senior_reviewer"
    ),
)
async def review_session(
    session_id: SessionId,
    body: ReviewBody,
    key: Annotated[Caller, Depends(require(*REVIEW_ROLES))],
    gateway: GatewayDep,
) -> ReviewOutcome:
    bind_session(session_id)
    role = key.reviewer_role
    assert role is not None  # require() admitted a reviewer role
    review = ReviewInput(
        reviewer_id=key.principal,
        role=role,
        approve=bool(body.approve),
        step_up=body.step_up,
        reason=body.reason,
    )
    return await gateway.sessions.review(session_id, review)
