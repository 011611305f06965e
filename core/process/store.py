"""The process domain's writes: a state entry and an approval step, each in the caller's transaction,
keyed so that a retried attempt (or a worker killed mid-write) never duplicates a row. The activities
(activities/process/state_entry.py) open the transaction and count telemetry; the scale seeder
(scripts/seed_scale.py) builds its event rows with ``event_row`` too, so the shapes cannot drift.

Reads of the projection for the API live in ``core/process/instances.py``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import DateTime, Integer, Table, bindparam, exists, func, literal_column, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.entities import store as entities
from core.entities.contracts import EntityLimits
from core.experiments import store as experiments
from core.notifications.store import insert_notifications
from core.platform import direct
from core.process import templates
from core.process.contracts import ApprovalRecordInput, EnterStateInput
from core.process.ids import event_id
from core.process.migration import MigrateRecordInput
from core.process.tables import GraphData, StateVisit, WorkflowEvent

logger = logging.getLogger(__name__)

# The columns of an instance event row, in the order the seeder copies them.
EVENT_COLUMNS = (
    "id",
    "workflow_data_id",
    "event_type",
    "from_state_id",
    "to_state_id",
    "trigger_entity_id",
    "created_entity_id",
    "event_ts",
    "seq",
    "actor",
    "comment",
    "payload",
)


# The columns of an ended state visit (f_state_visit), in the order the seeder copies them.
VISIT_COLUMNS = ("instance_id", "seq", "template_code", "state_id", "entered_ts", "left_ts", "seconds")


def event_row(
    instance_id: str,
    seq: int,
    event_type: str,
    *,
    ts: datetime,
    from_state_id: int | None,
    to_state_id: int | None,
    actor: str | None,
    trigger_entity_id: uuid.UUID | None = None,
    created_entity_id: uuid.UUID | None = None,
    comment: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of an instance's event log; its id is derived from (instance, seq, type), so writing it
    twice writes it once."""
    return {
        "id": event_id(instance_id, seq, event_type),
        "workflow_data_id": uuid.UUID(instance_id),
        "event_type": event_type,
        "from_state_id": from_state_id,
        "to_state_id": to_state_id,
        "trigger_entity_id": trigger_entity_id,
        "created_entity_id": created_entity_id,
        "event_ts": ts,
        "seq": seq,
        "actor": actor,
        "comment": comment,
        "payload": payload or {},
    }


def _json(models: list[Any]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", by_alias=True) for m in models]


def _entry_event(
    data: EnterStateInput, event_type: str, *, created: uuid.UUID | None = None, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    return event_row(
        data.instance_id,
        data.seq,
        event_type,
        ts=data.ts,
        from_state_id=data.from_state_id,
        to_state_id=data.to_state.id,
        actor=data.actor,
        trigger_entity_id=uuid.UUID(data.root_entity_id) if data.root_entity_id else None,
        created_entity_id=created,
        comment=data.comment,
        payload=payload,
    )


class AlreadyEntered(Exception):
    """An earlier attempt committed this state entry: this attempt's transaction must be rolled back
    (it may have re-applied the entity change before the projection said so; see ``enter_state``)."""


async def enter_state(conn: AsyncConnection, data: EnterStateInput, limits: EntityLimits) -> None:
    """Create or update the state's entity, link it, project the instance and log the events. Raises
    AlreadyEntered when an earlier attempt committed this step already; the caller's transaction must
    then end without committing (``engine.begin()`` rolls back on the exception).

    The statements are pipelined (issue 27, decision 0025): the projection is sent first and the entity
    write after it without waiting, so BEGIN, both statements and their answers take one round trip,
    and the event rows travel with the end of the block. The entity write is therefore sent before the
    projection has said whether this step was recorded already; when it was, the write is undone by the
    rollback, and Postgres runs the two in order, so a concurrent attempt waits on the projection's row
    lock before it reaches the entity."""
    state = data.to_state
    entity = uuid.UUID(data.entity_id) if data.entity_id else None
    root = uuid.UUID(data.root_entity_id) if data.root_entity_id else None
    events = [_entry_event(data, "state_transition", created=entity if data.entity_action == "created" else None)]
    if entity is not None and data.entity_action is not None:
        events.append(
            _entry_event(
                data,
                f"entity_{data.entity_action}",
                created=entity,
                payload={"entity_type": state.entity_name, "status": state.entity_status},
            )
        )
    if state.approval is not None:
        events.append(_entry_event(data, "approval_requested", payload={"roles": list(state.approval.roles)}))
    if state.terminal_flag:
        events.append(_entry_event(data, "instance_completed", payload={"success": bool(state.success)}))
    async with direct.pipeline(conn):
        projection = await _project(conn, data, events)  # the instance row and its events, in one statement
        if entity is not None and state.entity_name and state.entity_status:
            await _write_entity(conn, data, entity, root, limits)
        projected = await projection.first()
        if projected is None:
            raise AlreadyEntered(data.instance_id)
        if state.terminal_flag:
            await templates.count_finish(
                conn,
                uuid.UUID(data.template.head_id),
                started=data.started_ts,
                finished=data.ts,
                success=bool(state.success),
            )
    if state.terminal_flag and projected.experiment_id is not None:
        await experiments.guardrail(conn, projected.experiment_id)  # SQLAlchemy's statements: after the pipeline


async def _write_entity(
    conn: AsyncConnection, data: EnterStateInput, entity: uuid.UUID, root: uuid.UUID | None, limits: EntityLimits
) -> None:
    state = data.to_state
    assert state.entity_name and state.entity_status
    if data.entity_action == "created":
        under_root = root is not None and data.root_entity_type is not None and root != entity
        await entities.create(
            conn,
            entity_id=entity,
            entity_type=state.entity_name,
            name=data.entity_name or state.entity_name,
            status=state.entity_status,
            fields=data.entity_fields,
            ts=data.ts,
            actor=data.actor,
            parent=(data.root_entity_type, root) if under_root else None,  # type: ignore[arg-type]
            limits=limits,
        )
    elif (
        await entities.change(
            conn,
            entity,
            status=state.entity_status,
            set_fields=data.entity_fields,
            ts=data.ts,
            actor=data.actor,
            limits=limits,
        )
        is None
    ):
        logger.warning("instance %s: entity %s to update is gone", data.instance_id, entity)


async def _project(conn: AsyncConnection, data: EnterStateInput, events: list[dict[str, Any]]) -> direct.Rows:
    """Upsert the instance row unless a later (or this) step is already recorded, and log the step's
    ``events`` only if it was: its row is the row written (its id and experiment), none if nothing was.

    One statement (issue 27: a round trip fewer per state entry): the upsert is a CTE, and the events,
    sent as one JSON array and unpacked by ``jsonb_populate_recordset``, are inserted by another that
    reads it. Postgres runs every data-modifying CTE to completion whether or not the query reads it."""
    state = data.to_state
    values: dict[str, Any] = {
        "id": uuid.UUID(data.instance_id),
        "workflow_head_id": uuid.UUID(data.template.head_id),
        "current_state_id": state.id,
        "current_state_name": state.name,
        "state_history": _json([data.history_entry]),
        "created_entities": _json([data.created_entity] if data.created_entity else []),
        "workflow_status": data.workflow_status,
        "success_flag": data.success,
        "started_ts": data.started_ts,
        "completed_ts": data.ts if state.terminal_flag else None,
        "workflow_id": data.workflow_id,
        "template_code": data.template.code,
        "template_version": data.template.version,
        "root_entity_id": uuid.UUID(data.root_entity_id) if data.root_entity_id else None,
        "pending_approval": data.pending_approval.model_dump(mode="json") if data.pending_approval else None,
        "last_seq": data.seq,
        "updated_ts": data.ts,
        "deadline_alert_ts": None,  # a new state: no alert of it yet
        "experiment_id": uuid.UUID(data.variant.experiment_id) if data.variant else None,
        "variant": data.variant.name if data.variant else None,
    }
    params = {f"p_{k}": v for k, v in values.items()}
    params["events"] = [_as_json(e) for e in events]
    return await direct.execute(conn, _projection_statement(tuple(values)), params)


_FIXED = ("id", "started_ts", "workflow_head_id", "experiment_id", "variant")  # set by an instance's first entry


@functools.cache
def _projection_statement(written: tuple[str, ...]) -> Any:
    """The state entry's projection and event log statement for the ``written`` columns (the keys of
    ``_project``'s values, always the same), built once: its values are parameters (``p_<column>``, and
    ``events``), so no entry spends time building or keying the statement again (issue 27: building it
    took about as long as running it)."""
    table = cast(Table, GraphData.__table__)
    columns = [table.c[name] for name in written]
    insert_row = insert(table).values({c.name: bindparam(f"p_{c.name}", type_=c.type) for c in columns})
    excluded = insert_row.excluded
    changing: dict[str, Any] = {c.name: excluded[c.name] for c in columns if c.name not in _FIXED}
    # The lists grow by this step's entries; the seq guard below makes that happen once per step.
    changing["state_history"] = table.c.state_history.op("||")(excluded.state_history)
    changing["created_entities"] = table.c.created_entities.op("||")(excluded.created_entities)
    projected = (
        insert_row.on_conflict_do_update(
            index_elements=[table.c.id], set_=changing, where=table.c.last_seq < excluded.last_seq
        )
        .returning(table.c.id, table.c.experiment_id)
        .cte("projected")
    )
    rows = func.jsonb_populate_recordset(_EVENT_ROW, bindparam("events", type_=JSONB)).table_valued(*EVENT_COLUMNS)
    events = cast(Table, WorkflowEvent.__table__)
    logged = (
        insert(events)
        .from_select(list(EVENT_COLUMNS), select(*(rows.c[c] for c in EVENT_COLUMNS)).where(exists(projected.select())))
        .on_conflict_do_nothing(index_elements=[events.c.id])
        .cte("logged")
    )
    # The visit this entry ends: the one the history's last entry began, read from the row as it was
    # before this statement (a CTE sees the statement's snapshot), written once the upsert has written.
    before = table.c.state_history.op("->")(-1)
    entered = cast_(before.op("->>")("ts"), DateTime(timezone=True))
    now = bindparam("p_updated_ts", type_=table.c.updated_ts.type)
    visits = cast(Table, StateVisit.__table__)
    ended = (
        insert(visits)
        .from_select(
            list(VISIT_COLUMNS),
            select(
                table.c.id,
                bindparam("p_last_seq", type_=Integer),
                table.c.template_code,
                cast_(before.op("->>")("to"), Integer),
                entered,
                now,
                func.extract("epoch", now - entered),
            ).where(
                table.c.id == bindparam("p_id", type_=table.c.id.type),
                table.c.last_seq < bindparam("p_last_seq", type_=Integer),
                func.jsonb_array_length(table.c.state_history) > 0,
                exists(projected.select()),
            ),
        )
        .on_conflict_do_nothing(index_elements=[visits.c.instance_id, visits.c.seq])
        .cte("ended")
    )
    return select(projected.c.id, projected.c.experiment_id).add_cte(logged).add_cte(ended)


# The event log's row type, which jsonb_populate_recordset fills from each event's JSON object.
_EVENT_ROW: Any = literal_column(f"NULL::{WorkflowEvent.__table__.schema}.{WorkflowEvent.__tablename__}")


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """An event row as JSON values (ids as text, times in ISO 8601), which Postgres casts back."""
    return {
        k: str(v) if isinstance(v, uuid.UUID) else v.isoformat() if isinstance(v, datetime) else v
        for k, v in row.items()
    }


def _alert_change(data: ApprovalRecordInput) -> dict[str, Any]:
    """The projection's open deadline alert after this step: raised, acknowledged, or as it was."""
    if data.event_type == "deadline_exceeded":
        return {"deadline_alert_ts": data.ts}
    if data.event_type == "deadline_acknowledged":
        return {"deadline_alert_ts": None}
    return {}


async def record_approval(conn: AsyncConnection, data: ApprovalRecordInput) -> str | None:
    """Record an approval step (decision, escalation, time-out) and its notifications. The instance's
    template code when this attempt wrote it, None when an earlier attempt did."""
    instance = uuid.UUID(data.instance_id)
    result = await conn.execute(
        update(GraphData)
        .where(GraphData.id == instance, GraphData.last_seq < data.seq)
        .values(
            pending_approval=(data.pending_approval.model_dump(mode="json") if data.pending_approval else None),
            last_seq=data.seq,
            updated_ts=data.ts,
            **({"paused": data.paused.model_dump(mode="json") if data.paused else None} if data.pause_change else {}),
            **_alert_change(data),
            **(
                {"workflow_status": data.workflow_status, "completed_ts": data.ts, "success_flag": False}
                if data.workflow_status is not None
                else {}
            ),
        )
        .returning(GraphData.workflow_head_id, GraphData.started_ts, GraphData.template_code, GraphData.experiment_id)
    )
    recorded = result.first()
    if recorded is None:
        return None
    if data.workflow_status is not None:
        await templates.count_finish(
            conn, recorded.workflow_head_id, started=recorded.started_ts, finished=data.ts, success=False
        )
        if recorded.experiment_id is not None:
            await experiments.guardrail(conn, recorded.experiment_id)
    row = event_row(
        data.instance_id,
        data.seq,
        data.event_type,
        ts=data.ts,
        from_state_id=data.state_id,
        to_state_id=None,
        actor=data.actor,
        comment=data.comment,
        payload=data.payload,
    )
    await conn.execute(insert(WorkflowEvent).values(row).on_conflict_do_nothing(index_elements=[WorkflowEvent.id]))
    await insert_notifications(
        conn,
        data.notifications,
        dedupe_prefix=f"process:{data.instance_id}:{data.seq}",
        source=f"process:{data.instance_id}",
        entity_id=None,
        ts=data.ts,
    )
    return str(recorded.template_code)


async def record_migration(conn: AsyncConnection, data: MigrateRecordInput, limits: EntityLimits) -> bool:
    """Move the instance's projection to the target version and state, log ``instance_migrated`` and, by
    the plan's entity rule, set the entity's status. False when an earlier attempt wrote it already."""
    instance = uuid.UUID(data.instance_id)
    result = await conn.execute(
        update(GraphData)
        .where(GraphData.id == instance, GraphData.last_seq < data.seq)
        .values(
            workflow_head_id=uuid.UUID(data.to_head_id),
            template_version=data.to_version,
            current_state_id=data.to_state.id,
            current_state_name=data.to_state.name,
            pending_approval=data.pending_approval.model_dump(mode="json") if data.pending_approval else None,
            last_seq=data.seq,
            updated_ts=data.ts,
            # Moved to another state: that state's alert is not raised yet. The same state keeps its own.
            **({} if data.to_state.id == data.from_state_id else {"deadline_alert_ts": None}),
        )
        .returning(GraphData.id)
    )
    if result.first() is None:
        return False
    if data.entity_id is not None and data.entity_status is not None:
        await entities.change(
            conn,
            uuid.UUID(data.entity_id),
            status=data.entity_status,
            set_fields={},
            ts=data.ts,
            actor=data.actor,
            limits=limits,
        )
    row = event_row(
        data.instance_id,
        data.seq,
        "instance_migrated",
        ts=data.ts,
        from_state_id=data.from_state_id,
        to_state_id=data.to_state.id,
        actor=data.actor,
        comment=f"migrated from v{data.from_version} to v{data.to_version}",
        payload=data.payload,
    )
    await conn.execute(insert(WorkflowEvent).values(row).on_conflict_do_nothing(index_elements=[WorkflowEvent.id]))
    return True
