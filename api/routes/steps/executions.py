"""Executions of step workflows under /api/v1/workflow-executions: list, one with its steps, cancel,
retry from a step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Query

from api.deps import EngineDep, GatewayDep, IdempotencyKey, Operator, Reader, SettingsDep, ensure_starter
from api.errors import ApiError
from api.gateway import WorkflowNotFound
from api.pagination import Cursor, Limit, Offset
from api.routes.steps.step_workflows import start_run
from core.platform.contracts import Page
from core.steps import store
from core.steps.contracts import (
    Compensable,
    ExecutionStatus,
    ResumeState,
    RetryRequest,
    StepExecutionDetail,
    StepExecutionPublic,
)
from core.steps.definition import WORKFLOW_NAME, StepWorkflowDefinition, visible
from core.steps.starting import begin_input, execution_id_for, run_input, summary
from workflows.steps.interpreter import StepWorkflowRun

router = APIRouter(prefix="/api/v1/workflow-executions", tags=["step workflows"])

OPEN = ("pending", "running")


@router.get("", response_model=Page[StepExecutionPublic])
async def list_executions(
    engine: EngineDep,
    _: Reader,
    workflow: str | None = Query(default=None, pattern=WORKFLOW_NAME),
    status: ExecutionStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[StepExecutionPublic]:
    """Newest first; ``status=failed`` lists failed executions with their error."""
    async with engine.connect() as conn:
        return await store.executions_page(
            conn, workflow=workflow, status=status, limit=limit, offset=offset, cursor=cursor
        )


@router.get("/{execution_id}", response_model=StepExecutionDetail)
async def get_execution(
    execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, _: Reader
) -> StepExecutionDetail:
    """The execution, its recorded steps in order, and for a running one where it is now (from the
    workflow itself: the current step, its attempt, a retry's wait)."""
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
        if found is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        steps = await store.steps_of(conn, execution_id)
    live = await gateway.query(found.temporal_workflow_id, StepWorkflowRun.live) if found.status in OPEN else None
    return StepExecutionDetail(**found.model_dump(), steps=steps, live=live)


@router.post("/{execution_id}/cancel", response_model=StepExecutionPublic, status_code=202)
async def cancel_execution(
    execution_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> StepExecutionPublic:
    """Ask a running execution to stop: the step under way is cancelled, the execution ends
    ``cancelled``. A finished execution is a 409."""
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
    if found is None:
        raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
    ensure_starter(principal, found.created_by, f"execution {execution_id}", "cancel")
    if found.status not in OPEN:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended ({found.status})")
    try:
        await gateway.cancel(found.temporal_workflow_id)
    except WorkflowNotFound as exc:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended") from exc
    return found


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
    """A new execution of the same version, input and context that reuses the recorded outputs of the
    steps before ``from_step`` (their effects are not repeated; their records are copied) and runs
    ``from_step`` and everything after it. For a failed, cancelled or compensated execution."""
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
        if found is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        ensure_starter(principal, found.created_by, f"execution {execution_id}", "retry")
        stored, refused = await store.runnable(conn, found.workflow_name, found.workflow_version)
        records = await store.steps_of(conn, execution_id)
    if found.status not in ("failed", "cancelled", "compensated"):
        raise ApiError(
            409,
            "execution_not_retryable",
            f"only a failed, cancelled or compensated execution is retried; this one is {found.status}",
        )
    assert stored is not None  # versions are never deleted
    if refused is not None:
        raise ApiError(409, "workflow_disabled", refused)
    definition = StepWorkflowDefinition.model_validate(stored.definition)
    names = [step.name for step in definition.steps]
    if body.from_step not in names:
        raise ApiError(
            422,
            "unknown_step",
            f"'{body.from_step}' is not a top-level step of {stored.name} v{stored.version}; "
            f"its steps: {', '.join(names)}",
            problems=[{"field": "from_step", "message": "not a top-level step of the execution's version"}],
        )
    if any(step.dependencies is not None for step in definition.steps):
        raise ApiError(
            422,
            "not_retryable_from_step",
            "this version's steps form a DAG (dependencies): run it again as a whole "
            "(POST /api/v1/workflows/{name}/execute)",
            problems=[{"field": "from_step", "message": "the definition is a DAG"}],
        )
    position = names.index(body.from_step)
    completed = {r.name: r.output for r in records if r.status == "completed" and r.path == r.name}
    before = [step for step in visible(definition.steps[:position]) if step.name in completed]
    variables = {step.name: completed[step.name] for step in before}
    compensable = [
        Compensable(
            path=step.name, step=step.name, compensation=step.on_error.compensation_step, output=variables[step.name]
        )
        for step in before
        if step.on_error is not None and step.on_error.compensation_step is not None
    ]
    key = ("retry", principal.name, str(execution_id), body.from_step, idempotency_key) if idempotency_key else ()
    run = run_input(
        stored,
        execution_id_for(*key),
        settings,
        input=found.input,
        context=found.context,
        trigger={
            "kind": "retry",
            "execution_id": str(execution_id),
            "from_step": body.from_step,
            "actor": principal.name,
        },
        created_by=principal.name,
    )
    run.resume = ResumeState(
        position=position,
        variables=variables,
        compensable=compensable,
        started_at=datetime.now(UTC),
        begun=False,
        reused_from=str(execution_id),
        reused_paths=[step.name for step in before],
    )
    await start_run(gateway, run, summary(run) + f" (retry from {body.from_step})")
    async with engine.begin() as conn:
        await store.accept(conn, begin_input(run))
        created = await store.get_execution(conn, uuid.UUID(run.execution_id))
    assert created is not None
    return created
