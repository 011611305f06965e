"""Data access of step workflows: stored versions of definitions, executions and their step records.

The records are written by the interpreter's activities only: ``begin`` (running), ``record_step``
(one per step path, written once), ``finish``. A tool that changes the database writes its step record
in the same transaction as its effect (``done_step`` / ``record_step``), which is what makes a retried
attempt find the effect and not repeat it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.experiments import store as experiments
from core.experiments.contracts import VariantArm
from core.platform.contracts import Page
from core.platform.pages import LIKE_ESCAPE, Order, fetch_page, like_escaped
from core.steps.contracts import (
    TASK_ACTIONS,
    BeginInput,
    FinishInput,
    PauseChange,
    StepExecutionPublic,
    StepPublic,
    StepRecordInput,
    TaskChange,
    TaskOpen,
    TaskRow,
    ToolCall,
    WaitInput,
    WorkflowPublic,
    WorkflowVersionPublic,
)
from core.steps.definition import StepWorkflowDefinition
from core.steps.tables import EventWait, StepExecution, StepRecord, StepSpawn, StepTask, StepWorkflow

# ------------------------------------------------------------------ definitions


def _public(row: Any) -> WorkflowPublic:
    return WorkflowPublic(
        name=row.name,
        version=row.version,
        description=row.description,
        enabled=row.enabled,
        definition=row.definition,
        created_by=row.created_by,
        created_ts=row.created_ts,
    )


async def latest_version(conn: AsyncConnection, name: str) -> int | None:
    return (await conn.execute(select(func.max(StepWorkflow.version)).where(StepWorkflow.name == name))).scalar()


async def store_version(
    conn: AsyncConnection, definition: StepWorkflowDefinition, created_by: str, *, first: bool
) -> WorkflowPublic | None:
    """Store a new version (1 when ``first``; None if the name exists then, or does not exist otherwise).
    The row lock on the latest version serialises two writers of one workflow."""
    latest = (
        await conn.execute(
            select(StepWorkflow.version)
            .where(StepWorkflow.name == definition.name)
            .order_by(StepWorkflow.version.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar()
    if (latest is None) != first:
        return None
    row = (
        await conn.execute(
            insert(StepWorkflow)
            .values(
                name=definition.name,
                version=(latest or 0) + 1,
                description=definition.description,
                definition=definition.wire(),
                enabled=definition.enabled,
                created_by=created_by,
            )
            .on_conflict_do_nothing()
            .returning(StepWorkflow.__table__)
        )
    ).first()
    return _public(row) if row is not None else None


async def get_workflow(conn: AsyncConnection, name: str, version: int | None = None) -> WorkflowPublic | None:
    stmt = select(StepWorkflow.__table__).where(StepWorkflow.name == name)
    stmt = stmt.where(StepWorkflow.version == version) if version else stmt.order_by(StepWorkflow.version.desc())
    row = (await conn.execute(stmt.limit(1))).first()
    return _public(row) if row is not None else None


async def runnable(
    conn: AsyncConnection, name: str, version: int | None = None
) -> tuple[WorkflowPublic | None, str | None]:
    """The version a new run would use, and why no new run may start (None when one may). Whether a
    workflow is enabled is its latest version's flag, for every version and every way in (execute, retry
    from a step, a rule's start_workflow, workflow.run): disabled means no new runs until enabled again."""
    stored = await get_workflow(conn, name, version)
    if stored is None:
        return None, (
            f"step workflow '{name}' does not exist" if version is None else f"'{name}' has no version {version}"
        )
    latest = stored if version is None else await get_workflow(conn, name)
    if latest is not None and not latest.enabled:
        return stored, f"step workflow '{name}' is disabled; PUT it with enabled true to run it"
    return stored, None


async def routed(
    conn: AsyncConnection, name: str, version: int | None, key: str
) -> tuple[WorkflowPublic | None, str | None, VariantArm | None]:
    """``runnable``, but a start that names no version of a workflow with a running experiment goes to
    the variant ``key`` routes to (decision 0022), and says which."""
    if version is None:
        experiment = await experiments.running_for(conn, name, "steps")
        if experiment is not None and any(v.routing for v in experiment.variants):
            chosen = experiments.route(experiment, key)
            stored, refused = await runnable(conn, name, chosen.version)
            return stored, refused, VariantArm(experiment_id=str(experiment.id), name=chosen.name)
    stored, refused = await runnable(conn, name, version)
    return stored, refused, None


async def reserve_spawn(conn: AsyncConnection, root: uuid.UUID, child: uuid.UUID, limit: int) -> str | None:
    """Count ``child`` against the executions ``root``'s tree may spawn; why not, when the tree has spawned
    ``limit`` already. Serialised per tree; a repeated reservation of the same child is free."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"spawn:{root}", 0))))
    if (await conn.execute(select(StepSpawn.child_execution_id).where(StepSpawn.child_execution_id == child))).first():
        return None
    spawned = (await conn.execute(select(func.count()).where(StepSpawn.root_execution_id == root))).scalar_one()
    if spawned >= limit:
        return (
            f"execution {root} and the executions it started have started {spawned} executions through "
            f"workflow.run, the most one run may (TRELLIS_STEPS_MAX_SPAWNED)"
        )
    await conn.execute(insert(StepSpawn).values(child_execution_id=child, root_execution_id=root))
    return None


async def workflows_page(
    conn: AsyncConnection, *, enabled: bool | None, limit: int, offset: int, cursor: str | None = None
) -> Page[WorkflowPublic]:
    latest = (
        select(StepWorkflow.name, func.max(StepWorkflow.version).label("version"))
        .group_by(StepWorkflow.name)
        .subquery()
    )
    stmt = select(StepWorkflow.__table__).join(
        latest, (StepWorkflow.name == latest.c.name) & (StepWorkflow.version == latest.c.version)
    )
    if enabled is not None:
        stmt = stmt.where(StepWorkflow.enabled.is_(enabled))
    return await fetch_page(
        conn, stmt, order=Order(StepWorkflow.name), limit=limit, offset=offset, cursor=cursor, item=_public
    )


async def versions(conn: AsyncConnection, name: str) -> list[WorkflowVersionPublic]:
    running = (
        select(StepExecution.workflow_version, func.count().label("running"))
        .where(StepExecution.workflow_name == name, StepExecution.status.in_(("pending", "running")))
        .group_by(StepExecution.workflow_version)
        .subquery()
    )
    rows = await conn.execute(
        select(
            StepWorkflow.version,
            StepWorkflow.enabled,
            StepWorkflow.created_by,
            StepWorkflow.created_ts,
            func.coalesce(running.c.running, 0).label("running"),
        )
        .outerjoin(running, running.c.workflow_version == StepWorkflow.version)
        .where(StepWorkflow.name == name)
        .order_by(StepWorkflow.version)
    )
    return [WorkflowVersionPublic.model_validate(r._mapping) for r in rows]


async def workflow_names(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(select(StepWorkflow.name).distinct().order_by(StepWorkflow.name))).scalars())


# ------------------------------------------------------------------ executions


async def accept(conn: AsyncConnection, data: BeginInput) -> None:
    """What every starter (the API's execute and retry, a rule's start_workflow) writes once it has
    started the execution's workflow: the pending row (never overwriting the workflow's own) and a
    retry's reused step records, so its answer shows them at once.

    The order is the same everywhere: start, then record. The workflow's first act (``begin``) writes
    the same row and copies, so a crash between the two leaves a run that records itself, never a
    pending row without a workflow."""
    await conn.execute(
        insert(StepExecution).values(**_execution_values(data), status="pending").on_conflict_do_nothing()
    )
    await _copy_reused(conn, data)


async def _copy_reused(conn: AsyncConnection, data: BeginInput) -> None:
    if data.reused_from is not None:
        await copy_steps(conn, uuid.UUID(data.reused_from), uuid.UUID(data.execution_id), data.reused_paths)


def _execution_values(data: BeginInput) -> dict[str, Any]:
    return {
        "id": uuid.UUID(data.execution_id),
        "workflow_name": data.workflow,
        "workflow_version": data.version,
        "temporal_workflow_id": data.temporal_workflow_id,
        "parent_execution_id": uuid.UUID(data.parent_execution_id) if data.parent_execution_id else None,
        "input": data.input,
        "context": data.context,
        "trigger": data.trigger,
        "created_by": data.created_by,
        "experiment_id": uuid.UUID(data.variant.experiment_id) if data.variant else None,
        "variant": data.variant.name if data.variant else None,
    }


async def begin(conn: AsyncConnection, data: BeginInput) -> None:
    now = datetime.now(UTC)
    await conn.execute(
        insert(StepExecution)
        .values(**_execution_values(data), status="running", started_ts=now)
        .on_conflict_do_update(
            index_elements=[StepExecution.id],
            set_={"status": "running", "started_ts": now},
            where=StepExecution.status == "pending",
        )
    )
    await _copy_reused(conn, data)


async def finish(conn: AsyncConnection, data: FinishInput) -> None:
    """Record the end; an experiment's run then runs its guardrail in the same transaction."""
    experiment = (
        await conn.execute(
            update(StepExecution)
            .where(StepExecution.id == uuid.UUID(data.execution_id))
            .values(
                status=data.status,
                output=data.output,
                error=data.error,
                step_errors=[e.model_dump() for e in data.step_errors],
                finished_ts=datetime.now(UTC),
                paused=None,
            )
            .returning(StepExecution.experiment_id)
        )
    ).scalar()
    if experiment is not None:
        await experiments.guardrail(conn, experiment)


async def set_paused(conn: AsyncConnection, data: PauseChange) -> None:
    paused = data.paused.model_dump(mode="json") if data.paused else None
    await conn.execute(
        update(StepExecution).where(StepExecution.id == uuid.UUID(data.execution_id)).values(paused=paused)
    )


async def recorded_step(conn: AsyncConnection, execution_id: str, path: str) -> Any | None:
    """The recorded row of a completed step (its effect happened), or None."""
    return (
        await conn.execute(
            select(StepRecord.output, StepRecord.status).where(
                StepRecord.execution_id == uuid.UUID(execution_id), StepRecord.path == path
            )
        )
    ).first()


class StepLedger:
    """Where a step tool's effect is recorded (core/effects/ledger.py): the step's own record, keyed by
    (execution, path), written as ``completed`` with the tool's output."""

    def __init__(self, call: ToolCall) -> None:
        self._call = call

    @property
    def lock_key(self) -> str:
        return f"{self._call.execution_id}:{self._call.path}"

    async def recorded(self, conn: AsyncConnection) -> dict[str, Any] | None:
        row = await recorded_step(conn, self._call.execution_id, self._call.path)
        return None if row is None or row.status != "completed" else dict(row.output or {})

    async def record(self, conn: AsyncConnection, output: dict[str, Any]) -> None:
        call = self._call
        await record_step(
            conn,
            StepRecordInput(
                execution_id=call.execution_id,
                path=call.path,
                position=call.position,
                name=call.name,
                tool=call.tool,
                status="completed",
                input=call.params,
                output=output,
                retry_count=call.attempt - 1,
                started_ts=call.started_ts,
            ),
        )


async def record_step(conn: AsyncConnection, data: StepRecordInput) -> None:
    """Write a step's record once; a repeat (a retried activity) changes nothing."""
    await conn.execute(
        insert(StepRecord)
        .values(
            execution_id=uuid.UUID(data.execution_id),
            path=data.path,
            position=data.position,
            name=data.name,
            tool=data.tool,
            status=data.status,
            input=data.input,
            output=data.output,
            error=data.error,
            retry_count=data.retry_count,
            started_ts=data.started_ts,
        )
        .on_conflict_do_nothing(index_elements=[StepRecord.execution_id, StepRecord.path])
    )


async def executions_page(
    conn: AsyncConnection,
    *,
    workflow: str | None,
    status: str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
    trigger_kind: str | None = None,
    search: str | None = None,
    source: uuid.UUID | None = None,
    variant: str | None = None,
) -> Page[StepExecutionPublic]:
    """Newest first; ``search`` is an execution id, or a prefix of the workflow's name (any case);
    ``source``: the runs whose trigger names that execution (its re-runs and child runs)."""
    stmt = select(StepExecution.__table__)
    if source is not None:
        stmt = stmt.where(StepExecution.trigger["execution_id"].astext == str(source))
    if workflow is not None:
        stmt = stmt.where(StepExecution.workflow_name == workflow)
    if status is not None:
        stmt = stmt.where(StepExecution.status == status)
    if trigger_kind is not None:
        stmt = stmt.where(StepExecution.trigger["kind"].astext == trigger_kind)
    if variant is not None:
        stmt = stmt.where(StepExecution.variant == variant)
    if search:
        try:
            stmt = stmt.where(StepExecution.id == uuid.UUID(search.strip()))
        except ValueError:
            stmt = stmt.where(StepExecution.workflow_name.ilike(f"{like_escaped(search)}%", escape=LIKE_ESCAPE))
    return await fetch_page(
        conn,
        stmt,
        order=Order(StepExecution.created_ts, StepExecution.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=StepExecutionPublic.model_validate,
    )


async def recent_finished(
    conn: AsyncConnection, name: str, version: int, limit: int
) -> list[tuple[StepExecutionPublic, list[StepPublic]]]:
    """The latest ended executions of a workflow version, newest first, each with its recorded steps
    (what a dry run of a changed definition shadows)."""
    rows = await conn.execute(
        select(StepExecution.__table__)
        .where(
            StepExecution.workflow_name == name,
            StepExecution.workflow_version == version,
            StepExecution.status.in_(("completed", "failed", "compensated", "cancelled")),
        )
        .order_by(StepExecution.created_ts.desc(), StepExecution.id.desc())
        .limit(limit)
    )
    found = [StepExecutionPublic.model_validate(r) for r in rows]
    return [(execution, await steps_of(conn, execution.id)) for execution in found]


async def get_execution(conn: AsyncConnection, execution_id: uuid.UUID) -> StepExecutionPublic | None:
    row = (await conn.execute(select(StepExecution.__table__).where(StepExecution.id == execution_id))).first()
    return StepExecutionPublic.model_validate(row) if row is not None else None


async def steps_of(conn: AsyncConnection, execution_id: uuid.UUID) -> list[StepPublic]:
    rows = await conn.execute(
        select(StepRecord.__table__)
        .where(StepRecord.execution_id == execution_id)
        .order_by(StepRecord.finished_ts, StepRecord.position)
    )
    return [StepPublic.model_validate(r) for r in rows]


async def add_wait(conn: AsyncConnection, wait: WaitInput) -> None:
    await conn.execute(
        insert(EventWait)
        .values(
            execution_id=uuid.UUID(wait.execution_id),
            path=wait.path,
            temporal_workflow_id=wait.temporal_workflow_id,
            source=wait.source,
            key=wait.key,
        )
        .on_conflict_do_nothing(index_elements=[EventWait.execution_id, EventWait.path])
    )


async def remove_wait(conn: AsyncConnection, wait: WaitInput) -> None:
    await conn.execute(
        delete(EventWait).where(EventWait.execution_id == uuid.UUID(wait.execution_id), EventWait.path == wait.path)
    )


async def waiting_on(conn: AsyncConnection, pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(source, key, temporal workflow id) of the executions waiting on any of these (source, key)."""
    if not pairs:
        return []
    rows = await conn.execute(
        select(EventWait.source, EventWait.key, EventWait.temporal_workflow_id)
        .where(tuple_(EventWait.source, EventWait.key).in_(sorted(set(pairs))))
        .distinct()
    )
    return [(row.source, row.key, row.temporal_workflow_id) for row in rows]


async def open_task(conn: AsyncConnection, task: TaskOpen) -> bool:
    """Insert the task once (a repeated attempt inserts nothing); True when it was new."""
    inserted = await conn.execute(
        insert(StepTask)
        .values(
            id=uuid.UUID(task.task_id),
            execution_id=uuid.UUID(task.execution_id),
            path=task.path,
            workflow_name=task.workflow,
            temporal_workflow_id=task.temporal_workflow_id,
            kind=task.kind,
            title=task.title,
            description=task.description,
            assignee=task.assignee,
            on_behalf_of=task.on_behalf_of,
            escalate_to=task.escalate_to,
            form=task.form,
            actions=list(TASK_ACTIONS[task.kind]),
            remind_ts=task.remind_at,
            escalate_ts=task.escalate_at,
        )
        .on_conflict_do_nothing(index_elements=[StepTask.id])
        .returning(StepTask.id)
    )
    return inserted.first() is not None


async def change_task(conn: AsyncConnection, change: TaskChange) -> TaskRow | None:
    """Apply a change to an open task; None when it is no longer open (a repeated attempt)."""
    values: dict[str, Any] = {}
    if change.change == "reminded":
        values = {"reminded": True}
    elif change.change == "escalated":
        values = {"escalated": True}
    elif change.change == "reassigned":
        values = {"assignee": change.assignee, "on_behalf_of": change.on_behalf_of}
    elif change.change == "decided":
        values = {"status": "decided", "decision": change.decision, "decided_by": change.actor, "decided_ts": change.ts}
    else:
        values = {"status": "cancelled", "decided_ts": change.ts}
    row = (
        await conn.execute(
            update(StepTask)
            .where(StepTask.id == uuid.UUID(change.task_id), StepTask.status == "open")
            .values(**values)
            .returning(*StepTask.__table__.c)
        )
    ).first()
    return TaskRow.model_validate(row) if row else None


async def get_task(conn: AsyncConnection, task_id: uuid.UUID) -> TaskRow | None:
    row = (await conn.execute(select(StepTask.__table__).where(StepTask.id == task_id))).first()
    return TaskRow.model_validate(row) if row else None


async def open_tasks(conn: AsyncConnection) -> list[TaskRow]:
    rows = await conn.execute(
        select(StepTask.__table__).where(StepTask.status == "open").order_by(StepTask.created_ts).limit(1000)
    )
    return [TaskRow.model_validate(row) for row in rows]


async def copy_steps(conn: AsyncConnection, source: uuid.UUID, target: uuid.UUID, paths: list[str]) -> None:
    """Reused steps of a retry: the source execution's completed records at ``paths``, under the target."""
    if not paths:
        return
    rows = (
        await conn.execute(
            select(StepRecord.__table__).where(
                StepRecord.execution_id == source, StepRecord.path.in_(paths), StepRecord.status == "completed"
            )
        )
    ).mappings()
    values = [
        {**{k: v for k, v in row.items() if k != "id"}, "id": uuid.uuid4(), "execution_id": target} for row in rows
    ]
    if values:
        await conn.execute(
            insert(StepRecord)
            .values(values)
            .on_conflict_do_nothing(index_elements=[StepRecord.execution_id, StepRecord.path])
        )


async def failed_since(conn: AsyncConnection, since: datetime) -> int:
    """Executions that failed after ``since`` (the console's home)."""
    stmt = select(func.count()).where(StepExecution.status == "failed", StepExecution.finished_ts >= since)
    return int((await conn.execute(stmt)).scalar_one())
