"""Reads of process instances from their database projection (for finished instances and lists)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.entities.tables import Entity
from core.platform.contracts import Page
from core.platform.pages import LIKE_ESCAPE, Order, fetch_page, like_escaped
from core.platform.pauses import PauseInfo
from core.process.contracts import (
    CreatedEntity,
    HistoryEntry,
    InstanceEvent,
    InstanceView,
    PendingApproval,
    StateRef,
    WorkflowGraph,
)
from core.process.ids import process_workflow_id
from core.process.tables import GraphData, GraphHead, InstanceForecast, WorkflowEvent

_COLUMNS = [*GraphData.__table__.columns, GraphHead.workflow_graph]


async def get_view(conn: AsyncConnection, instance_id: uuid.UUID) -> InstanceView | None:
    stmt = select(*_COLUMNS).join(GraphHead, GraphHead.id == GraphData.workflow_head_id)
    row = (await conn.execute(stmt.where(GraphData.id == instance_id))).mappings().first()
    return view_from_row(row) if row else None


async def get_handle_info(conn: AsyncConnection, instance_id: uuid.UUID) -> Mapping[Any, Any] | None:
    """Just what a transition needs (workflow id and status): no JSON columns on the hot path."""
    stmt = select(
        GraphData.workflow_id, GraphData.workflow_status, GraphData.current_state_id, GraphData.current_state_name
    ).where(GraphData.id == instance_id)
    return (await conn.execute(stmt)).mappings().first()


@dataclass(frozen=True)
class UpdateFallback:
    """Where an update goes when the instance's derived workflow id has no running workflow, as the
    database says: nowhere (no such instance), to an active workflow started under the earlier id
    scheme, or nowhere because the instance has finished (``refusal`` says so). Every entry point that
    sends an instance an update (the API's commands, the ``instance.transition`` step tool) asks this."""

    found: bool
    legacy_workflow_id: str | None = None
    refusal: str = ""


async def update_fallback(conn: AsyncConnection, instance_id: uuid.UUID) -> UpdateFallback:
    info = await get_handle_info(conn, instance_id)
    if info is None:
        return UpdateFallback(found=False, refusal=f"no process instance {instance_id}")
    if info["workflow_status"] == "active" and info["workflow_id"] != process_workflow_id(instance_id):
        return UpdateFallback(found=True, legacy_workflow_id=info["workflow_id"])
    return UpdateFallback(
        found=True,
        refusal=f"instance is {info['workflow_status']} (state {info['current_state_id']} "
        f"'{info['current_state_name']}'); it takes no more transitions",
    )


# A template version never changes: its parsed graph is kept by head id (a page of instances of one
# template parses it once, not once per row).
_GRAPHS: dict[Any, WorkflowGraph] = {}


def _graph(head_id: Any, raw: Any) -> WorkflowGraph:
    graph = _GRAPHS.get(head_id)
    if graph is None:
        if len(_GRAPHS) > 1000:
            _GRAPHS.clear()
        graph = _GRAPHS[head_id] = WorkflowGraph.model_validate(raw)
    return graph


async def _load_graphs(conn: AsyncConnection, rows: list[Any]) -> None:
    """The graphs of a page's template versions not parsed yet, in one query: a page's rows share a few
    versions, so the rows need not carry (and the driver need not decode) the graph each."""
    missing = {r.workflow_head_id for r in rows} - _GRAPHS.keys()
    if missing:
        if len(_GRAPHS) + len(missing) > 1000:
            _GRAPHS.clear()  # made room before, so the page's own graphs all stay until its views are built
            missing = {r.workflow_head_id for r in rows}
        found = await conn.execute(select(GraphHead.id, GraphHead.workflow_graph).where(GraphHead.id.in_(missing)))
        for head_id, raw in found:
            _GRAPHS[head_id] = WorkflowGraph.model_validate(raw)


def view_from_row(row: Mapping[Any, Any]) -> InstanceView:
    """The view of a projection row; the row carries its template version's ``workflow_graph``, or the
    graph was loaded by ``_load_graphs`` for its page."""
    head_id = row["workflow_head_id"]
    graph = _graph(head_id, row["workflow_graph"]) if "workflow_graph" in row else _GRAPHS[head_id]
    states = {s.id: s for s in graph.states}
    current = states[row["current_state_id"]]
    active = row["workflow_status"] == "active"
    return InstanceView(
        instance_id=str(row["id"]),
        workflow_id=row["workflow_id"],
        template_code=row["template_code"],
        template_version=row["template_version"],
        workflow_head_id=str(row["workflow_head_id"]),
        root_entity_id=str(row["root_entity_id"]) if row["root_entity_id"] else None,
        current_state=StateRef.of(current),
        allowed_next_states=[StateRef.of(states[c]) for c in current.child_ids] if active else [],
        pending_approval=PendingApproval.model_validate(row["pending_approval"]) if row["pending_approval"] else None,
        state_history=[HistoryEntry.model_validate(h) for h in row["state_history"]],
        created_entities=[CreatedEntity.model_validate(c) for c in row["created_entities"]],
        workflow_status=row["workflow_status"],
        success=row["success_flag"],
        started_ts=row["started_ts"],
        completed_ts=row["completed_ts"],
        source="database",
        paused=PauseInfo.model_validate(row["paused"]) if row["paused"] else None,
        variant=row.get("variant"),
    )


async def instances_page(
    conn: AsyncConnection,
    *,
    template_code: str | None,
    state_id: int | None,
    status: str | None,
    root_entity_id: uuid.UUID | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
    variant: str | None = None,
) -> Page[InstanceView]:
    stmt = select(GraphData.__table__)
    if variant is not None:
        stmt = stmt.where(GraphData.variant == variant)
    if template_code is not None:
        stmt = stmt.where(GraphData.template_code == template_code)
    if state_id is not None:
        stmt = stmt.where(GraphData.current_state_id == state_id)
    if status is not None:
        stmt = stmt.where(GraphData.workflow_status == status)
    if root_entity_id is not None:
        stmt = stmt.where(GraphData.root_entity_id == root_entity_id)
    order = Order(GraphData.started_ts, GraphData.id, descending=True)
    return await fetch_page(
        conn,
        stmt,
        order=order,
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=lambda r: view_from_row(r._mapping),
        prepare=lambda rows: _load_graphs(conn, rows),
    )


async def events_page(
    conn: AsyncConnection, instance_id: uuid.UUID, *, limit: int, offset: int, cursor: str | None = None
) -> Page[InstanceEvent]:
    """An instance's event log in the order it happened (by sequence; events of one step share it)."""
    stmt = select(WorkflowEvent.__table__).where(WorkflowEvent.workflow_data_id == instance_id)
    order = Order(WorkflowEvent.seq, WorkflowEvent.id)
    return await fetch_page(
        conn, stmt, order=order, limit=limit, offset=offset, cursor=cursor, item=InstanceEvent.model_validate
    )


async def running_instance_managing(conn: AsyncConnection, entity_id: uuid.UUID) -> Mapping[Any, Any] | None:
    """The active instance whose states created or updated this entity (its status is theirs to set)."""
    stmt = (
        select(GraphData.id, GraphData.template_code, GraphData.current_state_id, GraphData.current_state_name)
        .where(
            GraphData.workflow_status == "active",
            GraphData.created_entities.op("@>")(func.jsonb_build_array(func.jsonb_build_object("id", str(entity_id)))),
        )
        .limit(1)
    )
    return (await conn.execute(stmt)).mappings().first()


# What an inbox item shows of an instance: its state, template and root entity's name.
_INBOX_COLUMNS = (
    GraphData.id,
    GraphData.template_code,
    GraphData.current_state_id,
    GraphData.current_state_name,
    GraphData.root_entity_id,
    Entity.name.label("entity_name"),
)


async def pending_approvals(conn: AsyncConnection, *, limit: int = 500) -> list[dict[str, Any]]:
    """Running instances whose current state waits for an approval decision (for the inbox), with the
    root entity's name and the template's; oldest request first."""
    stmt = (
        select(*_INBOX_COLUMNS, GraphData.pending_approval)
        .outerjoin(Entity, Entity.id == GraphData.root_entity_id)
        .where(
            GraphData.workflow_status == "active",
            GraphData.pending_approval["status"].astext == "pending",
        )
        .order_by(GraphData.pending_approval["requested_ts"].astext)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await conn.execute(stmt)).all()]


async def open_deadline_alerts(conn: AsyncConnection, *, limit: int = 500) -> list[dict[str, Any]]:
    """Running instances with a deadline alert for the state they are still in, not acknowledged since
    (for the inbox), oldest first: the alert's time, state, template, root entity and the template's owner
    role. The projection keeps the open alert's time (``deadline_alert_ts``, a partial index), so this
    reads the page's rows only, never the event log's alerts."""
    stmt = (
        select(
            *_INBOX_COLUMNS,
            GraphHead.workflow_graph["owner_role"].astext.label("owner_role"),
            GraphData.deadline_alert_ts.label("raised_ts"),
        )
        .join(GraphHead, GraphHead.id == GraphData.workflow_head_id)
        .outerjoin(Entity, Entity.id == GraphData.root_entity_id)
        .where(GraphData.deadline_alert_ts.is_not(None), GraphData.workflow_status == "active")
        .order_by(GraphData.deadline_alert_ts)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await conn.execute(stmt)).all()]


# --------------------------------------------------------------------------- the console's list


class InstanceRow(BaseModel):
    """One line of the instance list: what a person scans for, without the history or the graph."""

    instance_id: uuid.UUID
    template_code: str
    template_version: int
    current_state_id: int | None
    current_state_name: str | None
    workflow_status: str
    success: bool | None
    entity_name: str | None
    started_ts: datetime
    updated_ts: datetime
    pending_approval: bool
    overdue_seconds: float | None = Field(
        default=None, description="How long it has been in its state beyond the state's expected duration"
    )
    paused: PauseInfo | None = None
    variant: str | None = Field(default=None, description="The experiment variant it was routed to")
    risk: float | None = Field(default=None, description="The forecast watch's latest risk (0 to 1)")
    on_time_probability: float | None = None
    success_probability: float | None = None


# What the list sorts by risk: the watch's latest forecast, none (unforecast, finished) last.
_RISK = func.coalesce(InstanceForecast.risk, -1.0)

_LIST_COLUMNS: list[Any] = [
    GraphData.id,
    GraphData.workflow_head_id,
    GraphData.template_code,
    GraphData.template_version,
    GraphData.current_state_id,
    GraphData.current_state_name,
    GraphData.workflow_status,
    GraphData.success_flag,
    GraphData.started_ts,
    GraphData.updated_ts,
    GraphData.pending_approval,
    GraphData.paused,
    Entity.name.label("entity_name"),
    GraphData.variant,
    InstanceForecast.risk,
    InstanceForecast.on_time_probability,
    InstanceForecast.success_probability,
    _RISK,
]
InstanceSort = Literal["started", "updated", "risk"]
_SORTS: dict[str, Order] = {
    "started": Order(GraphData.started_ts, GraphData.id, descending=True),
    "updated": Order(GraphData.updated_ts, GraphData.id, descending=True),
    "risk": Order(_RISK, GraphData.id, descending=True),
}


# A template version never changes, so neither do its states' expected durations: each version's are
# read once per process, and a list reads only the ids of the versions (a new one is read when it appears).
_EXPECTED: dict[uuid.UUID, dict[int, float]] = {}


async def expected_durations(conn: AsyncConnection) -> dict[tuple[uuid.UUID, int], float]:
    """Each template version's states that have an expected duration, in seconds, by (head id, state)."""
    heads = list((await conn.execute(select(GraphHead.id))).scalars())
    unseen = [h for h in heads if h not in _EXPECTED]
    if unseen:
        rows = await conn.execute(select(GraphHead.id, GraphHead.workflow_graph).where(GraphHead.id.in_(unseen)))
        for head_id, raw in rows.all():
            _EXPECTED[head_id] = {
                state.id: state.avg_duration_days * 86400
                for state in _graph(head_id, raw).states
                if state.avg_duration_days and not state.terminal_flag
            }
    return {(h, state): seconds for h in heads for state, seconds in _EXPECTED.get(h, {}).items()}


def stuck_condition(expected: dict[tuple[uuid.UUID, int], float], now: datetime) -> ColumnElement[bool]:
    """Active instances that have been in their state longer than the state's expected duration: one
    indexed comparison per (version, state), so no JSON is read per row."""
    clauses = [
        and_(
            GraphData.workflow_head_id == head_id,
            GraphData.current_state_id == state_id,
            GraphData.updated_ts < now - timedelta(seconds=seconds),
        )
        for (head_id, state_id), seconds in expected.items()
    ]
    return and_(GraphData.workflow_status == "active", or_(*clauses) if clauses else false())


async def instance_list(
    conn: AsyncConnection,
    *,
    template_code: str | None = None,
    status: str | None = None,
    state_name: str | None = None,
    search: str | None = None,
    stuck: bool = False,
    paused: bool = False,
    sort: InstanceSort = "started",
    variant: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[InstanceRow]:
    """Instances for the console: filtered, searched by instance or entity id or by the entity's name
    (a prefix, any case), newest first by start or by last change, or riskiest first (the forecast
    watch's latest forecasts), keyset-paged."""
    now = datetime.now(UTC)
    expected = await expected_durations(conn)
    stmt: Select[Any] = (
        select(*_LIST_COLUMNS)
        .outerjoin(Entity, Entity.id == GraphData.root_entity_id)
        .outerjoin(InstanceForecast, InstanceForecast.instance_id == GraphData.id)
    )
    if variant:
        stmt = stmt.where(GraphData.variant == variant)
    if template_code:
        stmt = stmt.where(GraphData.template_code == template_code)
    if status:
        stmt = stmt.where(GraphData.workflow_status == status)
    if state_name:
        stmt = stmt.where(GraphData.current_state_name == state_name)
    if search:
        try:
            wanted = uuid.UUID(search.strip())
            stmt = stmt.where(or_(GraphData.id == wanted, GraphData.root_entity_id == wanted))
        except ValueError:
            stmt = stmt.where(Entity.name.ilike(f"{like_escaped(search)}%", escape=LIKE_ESCAPE))
    if stuck:
        stmt = stmt.where(stuck_condition(expected, now))
    if paused:
        stmt = stmt.where(GraphData.paused.is_not(None), GraphData.workflow_status == "active")

    def row(r: Any) -> InstanceRow:
        seconds = expected.get((r.workflow_head_id, r.current_state_id))
        over = (now - r.updated_ts).total_seconds() - seconds if seconds and r.workflow_status == "active" else None
        return InstanceRow(
            instance_id=r.id,
            template_code=r.template_code,
            template_version=r.template_version,
            current_state_id=r.current_state_id,
            current_state_name=r.current_state_name,
            workflow_status=r.workflow_status,
            success=r.success_flag,
            entity_name=r.entity_name,
            started_ts=r.started_ts,
            updated_ts=r.updated_ts,
            pending_approval=bool(r.pending_approval) and r.pending_approval.get("status") == "pending",
            overdue_seconds=over if over is not None and over > 0 else None,
            paused=PauseInfo.model_validate(r.paused) if r.paused else None,
            variant=r.variant,
            risk=r.risk if r.workflow_status == "active" else None,
            on_time_probability=r.on_time_probability if r.workflow_status == "active" else None,
            success_probability=r.success_probability if r.workflow_status == "active" else None,
        )

    return await fetch_page(conn, stmt, order=_SORTS[sort], limit=limit, offset=0, cursor=cursor, item=row)


async def active_by_template(conn: AsyncConnection) -> list[tuple[str, int]]:
    """Active instances per template code, most first (the console's home)."""
    stmt = (
        select(GraphData.template_code, func.count())
        .where(GraphData.workflow_status == "active")
        .group_by(GraphData.template_code)
        .order_by(func.count().desc())
    )
    return [(code, int(n)) for code, n in (await conn.execute(stmt)).all()]


async def paused_count(conn: AsyncConnection) -> int:
    stmt = select(func.count()).where(GraphData.paused.is_not(None), GraphData.workflow_status == "active")
    return int((await conn.execute(stmt)).scalar_one())


async def stuck_count(conn: AsyncConnection) -> int:
    condition = stuck_condition(await expected_durations(conn), datetime.now(UTC))
    return int((await conn.execute(select(func.count()).select_from(GraphData).where(condition))).scalar_one())


async def active_matching(
    conn: AsyncConnection,
    *,
    template_code: str,
    version: int | None = None,
    state_ids: list[int] | None = None,
    paused: bool | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    root_entity_id: uuid.UUID | None = None,
    limit: int,
) -> list[Mapping[Any, Any]]:
    """Active instances of a template (a version, some states, a start window, a root entity): the rows
    bulk pauses and migrations act on, oldest first, at most ``limit`` + 1 (so the caller can say there
    were more)."""
    stmt = select(
        GraphData.id,
        GraphData.workflow_head_id,
        GraphData.current_state_id,
        GraphData.pending_approval,
        GraphData.state_history[-1]["ts"].astext.label("entered"),
        GraphData.started_ts,
        GraphData.created_entities,
        GraphData.root_entity_id,
        GraphData.paused,
    ).where(GraphData.template_code == template_code, GraphData.workflow_status == "active")
    if version is not None:
        stmt = stmt.where(GraphData.template_version == version)
    if state_ids:
        stmt = stmt.where(GraphData.current_state_id.in_(state_ids))
    if paused is not None:
        stmt = stmt.where(GraphData.paused.is_not(None) if paused else GraphData.paused.is_(None))
    if started_after is not None:
        stmt = stmt.where(GraphData.started_ts >= started_after)
    if started_before is not None:
        stmt = stmt.where(GraphData.started_ts <= started_before)
    if root_entity_id is not None:
        stmt = stmt.where(GraphData.root_entity_id == root_entity_id)
    stmt = stmt.order_by(GraphData.started_ts, GraphData.id).limit(limit + 1)
    return list((await conn.execute(stmt)).mappings())


async def recent_of_version(conn: AsyncConnection, code: str, version: int, limit: int) -> list[Any]:
    """The latest instances of a template version with their recorded moves, newest first (what a dry
    run of a changed template replays)."""
    stmt = (
        select(GraphData.id, GraphData.state_history, GraphData.workflow_status, GraphData.success_flag)
        .where(GraphData.template_code == code, GraphData.template_version == version)
        .order_by(GraphData.started_ts.desc(), GraphData.id.desc())
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())
