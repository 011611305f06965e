"""Executions of step workflows under /api/v1/workflow-executions: list, one with its steps, cancel."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from api.deps import EngineDep, GatewayDep, Operator, Reader
from api.errors import ApiError
from api.gateway import WorkflowNotFound
from api.pagination import Limit, Offset
from core.platform.contracts import Page
from core.steps import store
from core.steps.contracts import ExecutionDetail, ExecutionPublic, ExecutionStatus
from core.steps.definition import WORKFLOW_NAME
from workflows.steps.interpreter import StepWorkflowRun

router = APIRouter(prefix="/api/v1/workflow-executions", tags=["step workflows"])

OPEN = ("pending", "running")


@router.get("", response_model=Page[ExecutionPublic])
async def list_executions(
    engine: EngineDep,
    _: Reader,
    workflow: str | None = Query(default=None, pattern=WORKFLOW_NAME),
    status: ExecutionStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExecutionPublic]:
    """Newest first; ``status=failed`` lists failed executions with their error."""
    async with engine.connect() as conn:
        return await store.executions_page(conn, workflow=workflow, status=status, limit=limit, offset=offset)


@router.get("/{execution_id}", response_model=ExecutionDetail)
async def get_execution(execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, _: Reader) -> ExecutionDetail:
    """The execution, its recorded steps in order, and for a running one where it is now (from the
    workflow itself: the current step, its attempt, a retry's wait)."""
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
        if found is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        steps = await store.steps_of(conn, execution_id)
    live = await gateway.query(found.temporal_workflow_id, StepWorkflowRun.live) if found.status in OPEN else None
    return ExecutionDetail(**found.model_dump(), steps=steps, live=live)


@router.post("/{execution_id}/cancel", response_model=ExecutionPublic, status_code=202)
async def cancel_execution(
    execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, _: Operator
) -> ExecutionPublic:
    """Ask a running execution to stop: the step under way is cancelled, the execution ends
    ``cancelled``. A finished execution is a 409."""
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
    if found is None:
        raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
    if found.status not in OPEN:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended ({found.status})")
    try:
        await gateway.cancel(found.temporal_workflow_id)
    except WorkflowNotFound as exc:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended") from exc
    return found
