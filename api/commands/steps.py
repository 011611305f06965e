"""Step workflow commands: list executions and workflows, read one execution, execute a workflow,
cancel an execution, retry one from a step. The API's routes and the console call these."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.commands.validation import ValidationReport
from api.deps import Principal, ensure_starter
from api.errors import ApiError, Problem
from api.gateway import AlreadyFinished, Gateway, WorkflowNotFound
from core.platform.contracts import Page
from core.platform.diffs import GraphDiff, workflow_diff
from core.platform.pauses import PauseCreate, PauseRequest, ResumeCreate, ResumeRequest
from core.platform.recommendations import Recommendations
from core.platform.settings import Settings
from core.steps import store
from core.steps.catalogue import Catalogue, rule_actions
from core.steps.contracts import (
    Compensable,
    ExecuteRequest,
    ResumeState,
    RetryRequest,
    RunInput,
    StepExecutionDetail,
    StepExecutionPublic,
    StepPublic,
    WorkflowPublic,
    WorkflowVersionPublic,
    execution_workflow_id,
)
from core.steps.definition import RESERVED_NAMES, StepWorkflowDefinition, visible
from core.steps.dryrun import RunComparison, StepDryRun, StepDryRunRequest, changed, compare, plan_from
from core.steps.recommendations import recommend, step_times
from core.steps.starting import (
    begin_input,
    execution_attributes,
    execution_id_for,
    routing_key,
    run_input,
    summary,
)
from core.steps.validation import Problem as StepProblem
from core.steps.validation import check
from workflows.steps.interpreter import StepWorkflowRun

OPEN = ("pending", "running")  # an execution that may still change


async def executions(
    principal: Principal,
    engine: AsyncEngine,
    *,
    workflow: str | None = None,
    status: str | None = None,
    trigger_kind: str | None = None,
    search: str | None = None,
    variant: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Page[StepExecutionPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.executions_page(
            conn,
            workflow=workflow,
            status=status,
            trigger_kind=trigger_kind,
            search=search,
            variant=variant,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


async def workflows(
    principal: Principal,
    engine: AsyncEngine,
    *,
    enabled: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Page[WorkflowPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.workflows_page(conn, enabled=enabled, limit=limit, offset=offset, cursor=cursor)


async def get(
    execution_id: uuid.UUID, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> StepExecutionDetail:
    """The execution, its recorded steps in order, and for a running one where it is now (from the
    workflow itself: the current step, its attempt, a retry's wait)."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
        if found is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        steps = await store.steps_of(conn, execution_id)
    live = await gateway.query(found.temporal_workflow_id, StepWorkflowRun.live) if found.status in OPEN else None
    return StepExecutionDetail(**found.model_dump(), steps=steps, live=live)


async def cancel(
    execution_id: uuid.UUID, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> StepExecutionPublic:
    """Ask a running execution to stop: the step under way is cancelled, the execution ends
    ``cancelled``. Its starter or an admin may; a finished execution is a 409."""
    allow(principal, "operator", doing="cancel executions")
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


async def pause(
    execution_id: uuid.UUID, body: PauseCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> StepExecutionPublic:
    """Pause a running execution: the step under way finishes and no other starts until it is resumed;
    its human tasks refuse decisions (409 ``paused``) meanwhile. Its starter or an admin may."""
    request = PauseRequest(actor=principal.name, actor_role=principal.role, reason=body.reason)
    return await _pause_change(execution_id, principal, engine, gateway, StepWorkflowRun.pause, request, "pause")


async def resume(
    execution_id: uuid.UUID, body: ResumeCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> StepExecutionPublic:
    request = ResumeRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _pause_change(execution_id, principal, engine, gateway, StepWorkflowRun.resume, request, "resume")


async def _pause_change(
    execution_id: uuid.UUID,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    update: Any,
    request: PauseRequest | ResumeRequest,
    verb: str,
) -> StepExecutionPublic:
    allow(principal, "operator", doing=f"{verb} executions")
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
    if found is None:
        raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
    ensure_starter(principal, found.created_by, f"execution {execution_id}", verb)
    if found.status not in OPEN:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended ({found.status})")
    try:
        await gateway.update(found.temporal_workflow_id, update, request)
    except WorkflowNotFound as exc:
        raise ApiError(409, "execution_finished", f"execution {execution_id} has already ended") from exc
    async with engine.connect() as conn:
        changed = await store.get_execution(conn, execution_id)
    assert changed is not None
    return changed


async def linked(
    execution_id: uuid.UUID, principal: Principal, engine: AsyncEngine, *, limit: int = 50, cursor: str | None = None
) -> Page[StepExecutionPublic]:
    """The runs linked to an execution: its re-runs (and the child executions its workflow.run steps
    started), newest first. An execution's own source is its ``trigger.execution_id``."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        if await store.get_execution(conn, execution_id) is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        return await store.executions_page(
            conn, workflow=None, status=None, limit=limit, offset=0, cursor=cursor, source=execution_id
        )


async def retry(
    execution_id: uuid.UUID,
    body: RetryRequest,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    settings: Settings,
    idempotency_key: str | None = None,
) -> StepExecutionPublic:
    """Re-run from a step: a new execution of the same version, linked to this one, that reuses the
    recorded outputs of the steps before ``from_step`` (their effects are not repeated; their records
    are copied) and runs ``from_step`` and everything after it, with the original input and context or
    edited ones. For an execution in any final state."""
    allow(principal, "operator", doing="re-run executions")
    async with engine.connect() as conn:
        found = await store.get_execution(conn, execution_id)
        if found is None:
            raise ApiError(404, "not_found", f"no workflow execution {execution_id}")
        ensure_starter(principal, found.created_by, f"execution {execution_id}", "retry")
        stored, refused = await store.runnable(conn, found.workflow_name, found.workflow_version)
        records = await store.steps_of(conn, execution_id)
    if found.status in OPEN:
        raise ApiError(
            409,
            "execution_not_retryable",
            f"the execution is still {found.status}; re-run it once it has ended (or cancel it first)",
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
    edited = [part for part in ("input", "context") if getattr(body, part) is not None]
    run = run_input(
        stored,
        execution_id_for(*key),
        settings,
        input=found.input if body.input is None else body.input,
        context=found.context if body.context is None else body.context,
        trigger={
            "kind": "retry",
            "execution_id": str(execution_id),
            "from_step": body.from_step,
            "actor": principal.name,
        }
        | ({"edited": edited} if edited else {}),
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


async def execute(
    name: str,
    body: ExecuteRequest,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    settings: Settings,
    idempotency_key: str | None = None,
) -> StepExecutionPublic:
    """Start an execution of the latest (or the given) version; answers at once with the execution,
    whose steps run durably."""
    allow(principal, "operator", doing="execute workflows")
    key = ("api", principal.name, name, idempotency_key) if idempotency_key else ()
    execution_id = execution_id_for(*key)
    async with engine.connect() as conn:
        stored, refused, arm = await store.routed(
            conn, name, body.version, routing_key(execution_id, body.input, body.context, {})
        )
    if stored is None:
        raise not_found(name) if body.version is None else ApiError(404, "not_found", str(refused))
    if refused is not None:
        raise ApiError(409, "workflow_disabled", refused)
    run = run_input(
        stored,
        execution_id,
        settings,
        variant=arm,
        input=body.input,
        context=body.context,
        trigger={"kind": "api", "actor": principal.name},
        created_by=principal.name,
    )
    await start_run(gateway, run, summary(run))
    async with engine.begin() as conn:
        await store.accept(conn, begin_input(run))
        found = await store.get_execution(conn, uuid.UUID(run.execution_id))
    assert found is not None
    return found


def not_found(name: str) -> ApiError:
    return ApiError(404, "not_found", f"no step workflow '{name}'; GET /api/v1/workflows lists them")


async def start_run(gateway: Gateway, run: RunInput, title: str) -> None:
    """Start the interpreter for ``run``; a retried request (same key) of one that has finished
    starts nothing, and the caller answers the execution as recorded."""
    try:
        await gateway.start(
            StepWorkflowRun.run,
            run,
            workflow_id=execution_workflow_id(run.execution_id),
            search_attributes=execution_attributes([run.workflow]),
            summary=title,
        )
    except AlreadyFinished:
        pass


async def definition_of(name: str, version: int, engine: AsyncEngine) -> StepWorkflowDefinition | None:
    """The definition of a stored version (versions are never deleted), for showing its steps."""
    async with engine.connect() as conn:
        stored, _ = await store.runnable(conn, name, version)
    return StepWorkflowDefinition.model_validate(stored.definition) if stored is not None else None


async def workflow(name: str, principal: Principal, engine: AsyncEngine, version: int | None = None) -> WorkflowPublic:
    """A step workflow's latest version, or the given one."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        stored = await store.get_workflow(conn, name, version)
    if stored is None:
        if version is None:
            raise not_found(name)
        raise ApiError(404, "not_found", f"step workflow '{name}' has no version {version}")
    return stored


async def recommendations(
    name: str, principal: Principal, engine: AsyncEngine, *, version: int | None = None, days: int = 30
) -> Recommendations:
    """Seed 004's optimizer for one version (default the latest): steps that could run in parallel with
    the time saved, the slowest steps, the most failing steps with their top errors."""
    stored = await workflow(name, principal, engine, version)
    params = {"name": stored.name, "version": stored.version, "since": datetime.now(UTC) - timedelta(days=days)}
    async with engine.connect() as conn:
        times, finished = await step_times(conn, params)
    definition = StepWorkflowDefinition.model_validate(stored.definition)
    notes = [] if finished else [f"v{stored.version} has no finished execution in the last {days} days: no times yet"]
    return Recommendations(
        subject=stored.name,
        version=stored.version,
        basis=f"{finished} finished executions of v{stored.version} in the last {days} days",
        items=recommend(definition, times),
        notes=notes,
    )


async def versions(name: str, principal: Principal, engine: AsyncEngine) -> list[WorkflowVersionPublic]:
    """Every stored version of a step workflow, newest first."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await store.versions(conn, name)
    if not found:
        raise not_found(name)
    return found


async def validate(
    definition: StepWorkflowDefinition, principal: Principal, catalogue: Catalogue, settings: Settings
) -> ValidationReport:
    """A step workflow checked as saving it would check it beyond its shape (its tools, params and
    references), and not stored; a malformed one is a 422 on the way in."""
    allow(principal, *READERS)
    found = await definition_problems(definition, catalogue, settings)
    problems = [Problem(field=p.path, message=p.message) for p in found]
    return ValidationReport(valid=not problems, problems=problems)


async def definition_problems(
    definition: StepWorkflowDefinition, catalogue: Catalogue, settings: Settings
) -> list[StepProblem]:
    """What saving a definition refuses beyond its shape (the one judge for the API and the designer)."""
    problems = await check(definition, catalogue.lookup, set(settings.event_sources))
    if definition.name in RESERVED_NAMES:
        problems.insert(0, StepProblem("name", f"'{definition.name}' is reserved"))
    return problems


def refused(problems: list[StepProblem], lead: str = "") -> ApiError:
    """The 422 of a definition the semantic checks refuse, each problem at its path."""
    return ApiError(
        422,
        "invalid_workflow",
        lead + "; ".join(f"{p.path}: {p.message}" for p in problems),
        problems=[{"field": p.path, "message": p.message} for p in problems],
    )


async def create(
    definition: StepWorkflowDefinition,
    principal: Principal,
    engine: AsyncEngine,
    catalogue: Catalogue,
    settings: Settings,
) -> WorkflowPublic:
    """Store version 1 of a new workflow, after the semantic checks (each problem named by its path)."""
    allow(principal, doing="save step workflows")
    created = await _checked_store(definition, principal, engine, catalogue, settings, first=True)
    if created is None:
        raise ApiError(
            409,
            "workflow_exists",
            f"a step workflow named '{definition.name}' exists; PUT to store a new version",
        )
    return created


async def replace(
    name: str,
    definition: StepWorkflowDefinition,
    principal: Principal,
    engine: AsyncEngine,
    catalogue: Catalogue,
    settings: Settings,
) -> WorkflowPublic:
    """Store a new version of an existing workflow (executions already running keep theirs)."""
    allow(principal, doing="save step workflows")
    if definition.name != name:
        raise ApiError(
            422,
            "name_mismatch",
            f"the body's name '{definition.name}' is not the path's '{name}'; a workflow cannot be renamed",
            problems=[{"field": "name", "message": f"must be '{name}'"}],
        )
    stored = await _checked_store(definition, principal, engine, catalogue, settings, first=False)
    if stored is None:
        raise not_found(name)
    return stored


async def _checked_store(
    definition: StepWorkflowDefinition,
    principal: Principal,
    engine: AsyncEngine,
    catalogue: Catalogue,
    settings: Settings,
    *,
    first: bool,
) -> WorkflowPublic | None:
    """Save a definition once the semantic checks pass (None: the name is taken, or unknown); the
    caller has checked the role."""
    problems = await definition_problems(definition, catalogue, settings)
    if problems:
        raise refused(problems)
    async with engine.begin() as conn:
        return await store.store_version(conn, definition, principal.name, first=first)


async def dry_run(
    name: str,
    body: StepDryRunRequest,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    catalogue: Catalogue,
    settings: Settings,
) -> StepDryRun:
    """Run a changed definition in shadow against the latest recorded executions of the current version
    (core/steps/dryrun.py): nothing is called, waited for or written; each step with an effect is
    answered from the records (or a stub in the request). Checked as saving it would be, and not saved."""
    allow(principal, doing="dry-run step workflows")
    if body.definition.name != name:
        raise ApiError(
            422,
            "name_mismatch",
            f"the definition's name '{body.definition.name}' is not the path's '{name}'",
            problems=[{"field": "definition.name", "message": f"must be '{name}'"}],
        )
    problems = await definition_problems(body.definition, catalogue, settings)
    if problems:
        raise refused([StepProblem(f"definition.{p.path}", p.message) for p in problems])
    async with engine.connect() as conn:
        current = await store.get_workflow(conn, name)
        if current is None:
            raise not_found(name)
        recorded = await store.recent_finished(conn, name, current.version, body.last_n)
    gate = asyncio.Semaphore(4)

    async def shadow(execution: StepExecutionPublic, steps: list[StepPublic]) -> RunComparison:
        run = RunInput(
            execution_id=str(uuid.uuid4()),
            workflow=name,
            version=current.version,
            definition=body.definition.wire(),
            input=execution.input,
            context=execution.context,
            trigger={"kind": "dry-run", "execution_id": str(execution.id)},
            created_by=principal.name,
            max_depth=settings.steps_max_depth,
            max_spawned=settings.steps_max_spawned,
            history_limit=settings.steps_history_limit,
            search_attributes=False,
            dry_run=plan_from(steps, body.stubs),
        )
        async with gate:
            result = await gateway.execute(StepWorkflowRun.run, run, workflow_id=f"dry-run-{run.execution_id}")
        return compare(execution, steps, result)

    runs = await asyncio.gather(*(shadow(execution, steps) for execution, steps in recorded))
    return StepDryRun(
        workflow=name, compared_version=current.version, changed=sum(1 for r in runs if changed(r)), runs=list(runs)
    )


async def schema(principal: Principal, catalogue: Catalogue) -> dict[str, Any]:
    """The JSON Schema of a step workflow, and every tool a step may call with its input and output
    schemas (Trellis tools, then each declared MCP server's), plus the rule actions for reference."""
    allow(principal, *READERS)
    tools, unavailable = await catalogue.listing()
    return {
        "definition": StepWorkflowDefinition.model_json_schema(by_alias=True),
        "tools": [
            {
                "name": t.name,
                "description": t.description,
                "source": t.source,
                "params": t.params_schema,
                "output": t.output_schema,
                "annotations": t.annotations,
            }
            for t in tools
        ],
        "unavailable_mcp_servers": unavailable,
        "rule_actions": [
            {"name": a.name, "description": a.description, "params": a.params_schema} for a in rule_actions()
        ],
    }


async def diff(name: str, versions_: tuple[int, int], principal: Principal, engine: AsyncEngine) -> GraphDiff:
    """What changed from one version of a step workflow to another: steps (nested ones by path) and
    their order or dependencies added, removed, changed."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        stored = [await store.get_workflow(conn, name, v) for v in versions_]
    for version, found in zip(versions_, stored, strict=True):
        if found is None:
            raise ApiError(404, "not_found", f"step workflow '{name}' has no version {version}")
    a, b = (found.definition for found in stored if found is not None)
    return workflow_diff(a, b, versions_)


async def restore(
    name: str, version: int, principal: Principal, engine: AsyncEngine, catalogue: Catalogue, settings: Settings
) -> WorkflowPublic:
    """Store an earlier version again as the newest one, checked as saving it anew would be (a tool it
    calls may have gone since). Running executions keep the versions they started on."""
    allow(principal, doing="restore workflow versions")
    async with engine.connect() as conn:
        found = await store.get_workflow(conn, name, version)
    if found is None:
        raise ApiError(404, "not_found", f"step workflow '{name}' has no version {version}")
    definition = StepWorkflowDefinition.model_validate({**found.definition, "enabled": True})
    problems = await definition_problems(definition, catalogue, settings)
    if problems:
        raise refused(problems, f"version {version} is refused now: ")
    async with engine.begin() as conn:
        stored = await store.store_version(conn, definition, principal.name, first=False)
    assert stored is not None  # the name exists: version was found
    return stored
