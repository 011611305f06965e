"""Shared test helpers: paths through templates and SQL reads of what an instance wrote."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity, EntityLink
from core.process.contracts import WorkflowGraph
from core.process.store import event_row
from core.process.tables import GraphData, StateVisit, WorkflowEvent


def node(id: int, parents: list[int], children: list[int], **extra: Any) -> dict[str, Any]:
    """A template state in the seed's JSON shape; a state without children defaults to a success terminal."""
    base = {
        "id": id,
        "name": f"s{id}",
        "parent_ids": parents,
        "child_ids": children,
        "entity_name": "job",
        "entity_status": f"S{id}",
    }
    if not children and "terminal_flag" not in extra:
        extra = {"terminal_flag": True, "success": True, **extra}
    return base | extra


def path_to(graph: WorkflowGraph, target: int) -> list[int]:
    """Shortest path of state ids from the start to ``target`` (start excluded)."""
    states = {s.id: s for s in graph.states}
    start = min(s.id for s in graph.states if not s.parent_ids)
    previous: dict[int, int | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for child in states[current].child_ids:
            if child not in previous:
                previous[child] = current
                queue.append(child)
    path: list[int] = []
    node: int | None = target
    while node is not None and node != start:
        path.append(node)
        node = previous[node]
    return list(reversed(path))


async def events_of(engine: AsyncEngine, instance_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(WorkflowEvent.__table__)
            .where(WorkflowEvent.workflow_data_id == uuid.UUID(instance_id))
            .order_by(WorkflowEvent.seq, WorkflowEvent.event_type)
        )
        return [dict(r) for r in rows.mappings()]


async def graph_row(engine: AsyncEngine, instance_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(GraphData.__table__).where(GraphData.id == uuid.UUID(instance_id))))
            .mappings()
            .one()
        )
        return dict(row)


async def entities_by_id(engine: AsyncEngine, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Entity.__table__).where(Entity.id.in_([uuid.UUID(i) for i in ids])))
        return {str(r["id"]): dict(r) for r in rows.mappings()}


async def children_of(engine: AsyncEngine, parent_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EntityLink.__table__).where(EntityLink.parent_entity_id == uuid.UUID(parent_id))
        )
        return [dict(r) for r in rows.mappings()]


async def count_events(engine: AsyncEngine, instance_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(WorkflowEvent)
                    .where(WorkflowEvent.workflow_data_id == uuid.UUID(instance_id))
                )
            ).scalar_one()
        )


def template(code: str, states: list[dict[str, Any]], name: str = "Test template") -> dict[str, Any]:
    return {"code": code, "name": name, "industry_sector": "testing", "workflow_graph": {"states": states}}


def unique_code(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


async def insert_history(
    engine: Any,
    code: str,
    walks: list[tuple[list[tuple[int, Any]], str]],
    *,
    version: int = 1,
    variant: tuple[str, str] | None = None,
) -> list[str]:
    """Recorded instances of a saved template version written straight into the projection and the
    event log, the rows the workflow's state entries write, with chosen times: each walk is its
    [(state id, entered at)] and its status (active, completed or cancelled, at the last time given
    after the path for a finish). Returns the instance ids. For figures that need days of history."""
    async with engine.begin() as conn:
        head = (
            await conn.execute(
                text(
                    "SELECT id, workflow_graph FROM app.d_industry_workflow_graph_head WHERE code = :c AND version = :v"
                ),
                {"c": code, "v": version},
            )
        ).one()
        states = {s["id"]: s for s in head.workflow_graph["states"]}
        ids: list[str] = []
        for path, status in walks:
            instance = str(uuid.uuid4())
            ids.append(instance)
            moves = path if status == "active" else path[:-1] if status == "cancelled" else path
            events = []
            for seq, (state_id, ts) in enumerate(moves, start=1):
                previous = moves[seq - 2][0] if seq > 1 else None
                events.append(
                    event_row(
                        instance,
                        seq,
                        "state_transition",
                        ts=ts,
                        from_state_id=previous,
                        to_state_id=state_id,
                        actor="t",
                    )
                )
            finished = None
            last = states[moves[-1][0]]
            if status == "cancelled":
                finished = path[-1][1]
                events.append(
                    event_row(
                        instance,
                        len(moves) + 1,
                        "instance_cancelled",
                        ts=finished,
                        from_state_id=last["id"],
                        to_state_id=None,
                        actor="t",
                    )
                )
            elif status == "completed":
                finished = moves[-1][1]
            await conn.execute(insert(WorkflowEvent).values(events))
            visits = [  # each visit a later state entry ended, as that entry's statement writes it
                {
                    "instance_id": uuid.UUID(instance),
                    "seq": seq,
                    "template_code": code,
                    "state_id": moves[seq - 2][0],
                    "entered_ts": moves[seq - 2][1],
                    "left_ts": ts,
                    "seconds": (ts - moves[seq - 2][1]).total_seconds(),
                }
                for seq, (_, ts) in enumerate(moves, start=1)
                if seq > 1
            ]
            if visits:
                await conn.execute(insert(StateVisit).values(visits))
            await conn.execute(
                insert(GraphData).values(
                    id=uuid.UUID(instance),
                    workflow_head_id=head.id,
                    current_state_id=last["id"],
                    current_state_name=last["name"],
                    state_history=[{"from": None, "to": s, "ts": t.isoformat(), "actor": "t"} for s, t in moves],
                    workflow_status=status,
                    started_ts=path[0][1],
                    completed_ts=finished,
                    workflow_id=f"history-{instance}",
                    template_code=code,
                    template_version=version,
                    success_flag=bool(last.get("success")) if status == "completed" else (False if finished else None),
                    last_seq=len(events),
                    updated_ts=moves[-1][1],
                    experiment_id=uuid.UUID(variant[0]) if variant else None,
                    variant=variant[1] if variant else None,
                )
            )
    return ids
