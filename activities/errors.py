"""Turn our reason-coded errors into Temporal's vocabulary at the activity edge.

Bad input becomes a non-retryable ApplicationError (retrying cannot fix it); a fault stays
retryable so the workflow's retry policy, and then its safe branch, take over. The reason
code travels as the ApplicationError type, so the workflow and ops see the same code as
the HTTP body and the log. The wrapper also binds the workflow and run ids to every log
line the activity writes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from signgate.errors import BadInput, SigngateError

P = ParamSpec("P")
R = TypeVar("R")


def reason_coded(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # Every log line an activity writes names the session's workflow and run (when
        # called as an activity; tests may call the method directly).
        bound: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if activity.in_activity():
            info = activity.info()
            bound = structlog.contextvars.bound_contextvars(
                workflow_id=info.workflow_id,
                run_id=info.workflow_run_id,
                activity=info.activity_type,
                attempt=info.attempt,
            )
        try:
            with bound:
                return await fn(*args, **kwargs)
        except SigngateError as err:
            raise ApplicationError(
                err.message, type=err.reason, non_retryable=isinstance(err, BadInput)
            ) from err

    return wrapper
