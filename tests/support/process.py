"""Shared test helpers: paths through templates and SQL reads of what an instance wrote."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity, EntityLink
from core.process.contracts import WorkflowGraph
from core.process.tables import GraphData, WorkflowEvent


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
