"""The reviewer API: the review queue and a reviewer's decision (the workflow's `review` Update).

The gateway authenticates the reviewer, passes the role its key holds (never one the
caller claims), and refuses a reviewer deciding their own onboarding; the workflow's
validator decides whether this reviewer may decide this session now (roster, four eyes,
stage) and says why not. The workflow writes every review to the ledger, naming the
reviewer, before the review can move the session.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError, RPCStatusCode

from gateway.auth import require
from gateway.errors import Refusal, session_not_found
from gateway.onboarding import ReviewQueueItem, workflow_id
from gateway.routes_sessions import SessionId
from gateway.state import Gateway, bind_session, gateway_of
from signgate.api_keys import Caller
from signgate.models import OnboardingRequest, ReviewInput, ReviewOutcome
from workers.client import decode_payloads

router = APIRouter(prefix="/v1", tags=["reviews"])

GatewayDep = Annotated[Gateway, Depends(gateway_of)]
QUEUE_ROLES = ("reviewer", "senior_reviewer", "ops", "admin")
REVIEW_ROLES = ("reviewer", "senior_reviewer")


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(min_length=3, max_length=2000)


@router.get("/reviews", summary="The review queue. Roles: reviewer, senior_reviewer, ops, admin")
async def review_queue(
    _: Annotated[Caller, Depends(require(*QUEUE_ROLES))],
    gateway: GatewayDep,
) -> list[ReviewQueueItem]:
    return await gateway.sessions.awaiting_review()


@router.post(
    "/sessions/{session_id}/review",
    summary="Approve or reject a session in review. Roles: reviewer, senior_reviewer",
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
    if _same_person(await _applicant_of(gateway, session_id), key.principal):
        raise Refusal(403, "review_own_session", "a reviewer may not decide their own onboarding")
    review = ReviewInput(
        reviewer_id=key.principal, role=role, approve=body.approve, reason=body.reason
    )
    return await gateway.sessions.review(session_id, review)


def _same_person(subject_ref: str, principal: str) -> bool:
    """Compared after NFKC and case folding, so a look-alike spelling is still the same id."""

    def norm(value: str) -> str:
        return unicodedata.normalize("NFKC", value).casefold().strip()

    return norm(subject_ref) == norm(principal)


async def _applicant_of(gateway: Gateway, session_id: str) -> str:
    """The session's subject_ref, from the workflow's own start input (the first history
    event), so it is the value the session runs with, not one the gateway kept aside."""
    client = await gateway.temporal.client()
    handle = client.get_workflow_handle(workflow_id(session_id))
    try:
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            request = await decode_payloads(client, payloads[:1], OnboardingRequest)
            if isinstance(request, OnboardingRequest):
                return str(request.subject_ref)
            break
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise Refusal(503, "temporal_unavailable", "the workflow service failed") from err
    except (ValueError, TypeError):
        pass  # not an onboarding session's input: the same answer as no session
    raise session_not_found(session_id)
