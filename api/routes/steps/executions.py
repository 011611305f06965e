"""Executions of step workflows under /api/v1/workflow-executions: list, one with its steps, cancel,
retry from a step."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query

from api.commands import steps as step_commands
from api.deps import EngineDep, GatewayDep, IdempotencyKey, Operator, Reader, SettingsDep
from api.pagination import Cursor, Limit, Offset
from core.platform.contracts import Page
from core.platform.pauses import PauseCreate, ResumeCreate
from core.steps.contracts import (
    ExecutionStatus,
    RetryRequest,
    StepExecutionDetail,
    StepExecutionPublic,
)
from core.steps.definition import WORKFLOW_NAME

router = APIRouter(prefix="/api/v1/workflow-executions", tags=["step workflows"])


@router.get("", response_model=Page[StepExecutionPublic])
async def list_executions(
    engine: EngineDep,
    principal: Reader,
    workflow: str | None = Query(default=None, pattern=WORKFLOW_NAME),
    status: ExecutionStatus | None = None,
    trigger_kind: Literal["api", "rule", "retry", "workflow.run"] | None = None,
    search: str | None = Query(default=None, max_length=200, description="An execution id, or a workflow name prefix"),
    variant: str | None = Query(default=None, max_length=40, description="An experiment variant's name"),
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[StepExecutionPublic]:
    """Newest first; ``status=failed`` lists failed executions with their error."""
    return await step_commands.executions(
        principal,
        engine,
        workflow=workflow,
        status=status,
        trigger_kind=trigger_kind,
        search=search,
        variant=variant,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


@router.get("/{execution_id}", response_model=StepExecutionDetail)
async def get_execution(
    execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> StepExecutionDetail:
    """The execution, its recorded steps in order, and for a running one where it is now (from the
    workflow itself: the current step, its attempt, a retry's wait)."""
    return await step_commands.get(execution_id, principal, engine, gateway)


@router.post("/{execution_id}/cancel", response_model=StepExecutionPublic, status_code=202)
async def cancel_execution(
    execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> StepExecutionPublic:
    """Ask a running execution to stop: the step under way is cancelled, the execution ends
    ``cancelled``. A finished execution is a 409."""
    return await step_commands.cancel(execution_id, principal, engine, gateway)


@router.post("/{execution_id}/pause", response_model=StepExecutionPublic)
async def pause_execution(
    execution_id: uuid.UUID, body: PauseCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> StepExecutionPublic:
    """Pause a running execution: the step under way finishes and no other starts until it is resumed;
    its human tasks refuse decisions meanwhile (409 ``paused``). Timers keep time."""
    return await step_commands.pause(execution_id, body, principal, engine, gateway)


@router.post("/{execution_id}/resume", response_model=StepExecutionPublic)
async def resume_execution(
    execution_id: uuid.UUID, body: ResumeCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> StepExecutionPublic:
    return await step_commands.resume(execution_id, body, principal, engine, gateway)


@router.get("/{execution_id}/runs", response_model=Page[StepExecutionPublic])
async def linked_runs(
    execution_id: uuid.UUID, engine: EngineDep, principal: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Page[StepExecutionPublic]:
    """The runs linked to this execution: its re-runs from a step (trigger kind ``retry``) and the child
    executions of its workflow.run steps, newest first."""
    return await step_commands.linked(execution_id, principal, engine, limit=limit, cursor=cursor)


@router.post("/{execution_id}/rerun", response_model=StepExecutionPublic, status_code=202)
@router.post("/{execution_id}/retry", response_model=StepExecutionPublic, status_code=202)
async def retry_execution(
    execution_id: uuid.UUID,
    body: RetryRequest,
    engine: EngineDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> StepExecutionPublic:
    """Re-run from a step (``/retry`` is the same): a new execution of the same version, linked to this
    one, that reuses the recorded outputs of the steps before ``from_step`` (their effects are not
    repeated; their records are copied) and runs ``from_step`` and everything after it, with the
    original input and context or the edited ones given. For an execution in any final state."""
    return await step_commands.retry(execution_id, body, principal, engine, gateway, settings, idempotency_key)
