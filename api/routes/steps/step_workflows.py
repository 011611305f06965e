"""Step workflows (seed 003) under /api/v1/workflows: the published format, stored versions, execute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.convertors import Convertor, register_url_convertor

from api.catalogue import CatalogueDep
from api.commands import steps as step_commands
from api.commands.validation import ValidationReport
from api.deps import Admin, EngineDep, GatewayDep, IdempotencyKey, Operator, Reader, SettingsDep
from api.pagination import Cursor, Limit, Offset
from core.platform.contracts import Page
from core.platform.diffs import GraphDiff
from core.platform.recommendations import Recommendations
from core.steps import metrics, store
from core.steps.contracts import (
    ExecuteRequest,
    StepExecutionPublic,
    WorkflowPublic,
    WorkflowVersionPublic,
)
from core.steps.definition import WORKFLOW_NAME, StepWorkflowDefinition
from core.steps.dryrun import StepDryRun, StepDryRunRequest
from core.steps.metrics import Period, WorkflowMetrics


class WorkflowNameConvertor(Convertor[str]):
    """A workflow's name in a path: never "schema" or "validate" (reserved names), so /workflows/schema
    and /workflows/validate match only their own routes (and their 405 answers list only theirs)."""

    regex = "(?!(schema|validate)/?$)" + WORKFLOW_NAME.removeprefix("^").removesuffix("$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("workflow_name", WorkflowNameConvertor())

router = APIRouter(prefix="/api/v1/workflows", tags=["step workflows"])


WorkflowName = Annotated[str, Path(pattern=WORKFLOW_NAME, description="The workflow's name")]
Version = Annotated[int | None, Query(ge=1, le=1_000_000, description="A stored version; default the latest")]


_not_found = step_commands.not_found


@router.post("/validate", response_model=ValidationReport)
async def validate_workflow(
    body: StepWorkflowDefinition, catalogue: CatalogueDep, settings: SettingsDep, principal: Reader
) -> ValidationReport:
    """Check a definition as saving it would and store nothing: a malformed body is a 422 with each
    field's path; a well-formed one is 200 with ``valid`` and each problem at its field
    (``steps[2].params.url``). Declared before ``/{name}`` so that path is this."""
    return await step_commands.validate(body, principal, catalogue, settings)


@router.get("/schema")
async def workflow_schema(catalogue: CatalogueDep, principal: Reader) -> dict[str, Any]:
    """The JSON Schema of a step workflow, and every tool a step may call with its input and output
    schemas (Trellis tools, then each declared MCP server's), plus the rule actions for reference."""
    return await step_commands.schema(principal, catalogue)


@router.get("", response_model=Page[WorkflowPublic])
async def list_workflows(
    engine: EngineDep,
    principal: Reader,
    enabled: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[WorkflowPublic]:
    """Each workflow's latest version."""
    return await step_commands.workflows(principal, engine, enabled=enabled, limit=limit, offset=offset, cursor=cursor)


@router.post("", response_model=WorkflowPublic, status_code=201)
async def create_workflow(
    body: StepWorkflowDefinition, engine: EngineDep, catalogue: CatalogueDep, settings: SettingsDep, principal: Admin
) -> WorkflowPublic:
    """Store version 1 of a new workflow, after the semantic checks (each problem named by its path)."""
    return await step_commands.create(body, principal, engine, catalogue, settings)


@router.post("/{name:workflow_name}/dry-run", response_model=StepDryRun)
async def dry_run_workflow(
    name: str,
    body: StepDryRunRequest,
    engine: EngineDep,
    gateway: GatewayDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    principal: Admin,
) -> StepDryRun:
    """Run a changed definition in shadow against the ``last_n`` latest ended executions of the current
    version, before saving it. Nothing is called, waited for or written: each step with an effect is
    answered with the recorded output of the step at its path, or a stub from ``stubs``; a new step with
    neither fails and is listed in ``needs_stub``. Per run: steps added, removed or skipped differently,
    branches taken differently, and whether the final status and output changed."""
    return await step_commands.dry_run(name, body, principal, engine, gateway, catalogue, settings)


@router.get("/{name:workflow_name}", response_model=WorkflowPublic)
async def get_workflow(
    name: WorkflowName, engine: EngineDep, principal: Reader, version: Version = None
) -> WorkflowPublic:
    return await step_commands.workflow(name, principal, engine, version)


@router.get("/{name:workflow_name}/versions", response_model=list[WorkflowVersionPublic])
async def list_versions(name: WorkflowName, engine: EngineDep, principal: Reader) -> list[WorkflowVersionPublic]:
    return await step_commands.versions(name, principal, engine)


@router.put("/{name:workflow_name}", response_model=WorkflowPublic)
async def replace_workflow(
    name: WorkflowName,
    body: StepWorkflowDefinition,
    engine: EngineDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    principal: Admin,
) -> WorkflowPublic:
    """Store a new version (``enabled: false`` disables the workflow); executions already running keep
    the version they started with."""
    return await step_commands.replace(name, body, principal, engine, catalogue, settings)


@router.post("/{name:workflow_name}/execute", response_model=StepExecutionPublic, status_code=202)
async def execute_workflow(
    name: WorkflowName,
    body: ExecuteRequest,
    engine: EngineDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> StepExecutionPublic:
    """Start an execution of the latest (or the given) version; answers at once with the execution,
    whose steps run durably. GET /api/v1/workflow-executions/{id} follows it."""
    return await step_commands.execute(name, body, principal, engine, gateway, settings, idempotency_key)


@router.get("/{name:workflow_name}/metrics", response_model=WorkflowMetrics)
async def workflow_metrics(
    name: WorkflowName,
    engine: EngineDep,
    _: Reader,
    period: Annotated[Period, Query(description="The trends' bucket")] = "day",
    days: Annotated[int, Query(ge=1, le=3660, description="The window: executions created in the last N days")] = 30,
) -> WorkflowMetrics:
    """Seed 004's execution metrics over the window: totals, average execution time (ms), success and
    error rates (percent of finished executions), bottlenecks (steps by p95 duration) and trends per
    period."""
    async with engine.connect() as conn:
        if await store.get_workflow(conn, name) is None:
            raise _not_found(name)
        return await metrics.workflow_metrics(conn, name, period, datetime.now(UTC) - timedelta(days=days))


@router.get("/{name:workflow_name}/recommendations", response_model=Recommendations)
async def workflow_recommendations(
    name: WorkflowName,
    engine: EngineDep,
    principal: Reader,
    version: Version = None,
    days: Annotated[int, Query(ge=1, le=3660, description="The window: executions created in the last N days")] = 30,
) -> Recommendations:
    """Seed 004's optimizer for a version (default the latest), from its definition and its executions
    in the window: consecutive steps that read nothing of each other and could run in parallel, with the
    time a run would save from their recorded durations; the slowest steps; the most failing steps with
    their most frequent errors."""
    return await step_commands.recommendations(name, principal, engine, version=version, days=days)


@router.get("/{name:workflow_name}/diff", response_model=GraphDiff)
async def diff_workflow_versions(
    name: WorkflowName,
    engine: EngineDep,
    principal: Reader,
    from_version: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=1_000_000)],
) -> GraphDiff:
    """Steps (nested ones by path, e.g. ``fan.x.call``) and their order or dependencies added, removed and
    changed from one version to another."""
    return await step_commands.diff(name, (from_version, to_version), principal, engine)


@router.post("/{name:workflow_name}/versions/{version}/restore", response_model=WorkflowPublic, status_code=201)
async def restore_workflow_version(
    name: WorkflowName,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    engine: EngineDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    principal: Admin,
) -> WorkflowPublic:
    """Store version ``version`` again as the newest (enabled) version, checked as saving it anew."""
    return await step_commands.restore(name, version, principal, engine, catalogue, settings)
