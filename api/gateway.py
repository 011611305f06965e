"""The one way the API starts workflows and sends them updates, and how their refusals map to HTTP.

Workflow errors are matched by ApplicationError *type*, never by message text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from core.settings import Settings
from workflows import agent_session
from workflows import process_instance as process

# ApplicationError type raised by a workflow → (HTTP status, error code)
_REFUSALS: dict[str, tuple[int, str]] = {
    process.INVALID_TRANSITION: (409, "invalid_transition"),
    process.INSTANCE_FINISHED: (409, "instance_finished"),
    process.APPROVAL_PENDING: (409, "approval_pending"),
    process.TRANSITION_IN_PROGRESS: (409, "transition_in_progress"),
    process.NO_APPROVAL_PENDING: (409, "no_approval_pending"),
    process.NOT_PERMITTED: (403, "forbidden"),
    agent_session.NOT_AWAITING_APPROVAL: (409, "not_awaiting_approval"),
}

UPDATE_TIMEOUT_SECONDS = 60.0


async def start_workflow(
    client: Client,
    settings: Settings,
    run: Callable[..., Awaitable[Any]],
    arg: Any,
    *,
    workflow_id: str,
    search_attributes: Sequence[SearchAttributePair[Any]],
    summary: str,
) -> WorkflowHandle[Any, Any]:
    """Start a workflow on the settings' task queue; a retried request with the same id reuses the
    running workflow.

    A closed workflow's id is never reused (the start raises WorkflowAlreadyStartedError), so a late
    retry cannot start a second run of something that already finished. Search attributes are left out
    when the settings turn them off (a server that cannot register custom ones).
    """
    if not settings.search_attributes:
        search_attributes = []
    return await client.start_workflow(
        run,
        arg,
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(list(search_attributes)),
        static_summary=summary,
    )


async def execute_update(handle: WorkflowHandle[Any, Any], update: Any, *args: Any) -> Any:
    """Run an update (a method reference, never a string name); turn the workflow's refusals into ApiErrors."""
    try:
        async with asyncio.timeout(UPDATE_TIMEOUT_SECONDS):
            return await handle.execute_update(update, *args)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type in _REFUSALS:
            status, code = _REFUSALS[cause.type]
            extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            raise ApiError(status, code, cause.message, **extra) from exc
        raise ApiError(
            503,
            "not_recorded",
            "the change could not be recorded (the database may be unavailable); nothing was changed, retry later",
        ) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, "instance_finished", "the workflow has already finished") from exc
        raise ApiError(503, "temporal_unavailable", f"Temporal did not accept the request: {exc.message}") from exc
    except TimeoutError as exc:
        raise ApiError(
            504,
            "timeout",
            f"no worker answered within {UPDATE_TIMEOUT_SECONDS:.0f}s; the request is queued and may still be "
            "applied: read the instance before retrying",
        ) from exc
