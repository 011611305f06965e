"""Migrations of running instances, in the database: the preview over the projection (the rule is
core/process/migration.py's ``move``), the migration and its items, and the batches' bookkeeping."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page
from core.process import templates
from core.process.contracts import PendingApproval, TemplatePublic
from core.process.instances import active_matching
from core.process.migration import (
    MAX_MIGRATION_INSTANCES,
    MigrationCreate,
    MigrationItemPublic,
    MigrationPlan,
    MigrationPreview,
    MigrationPublic,
    PreviewItem,
    Refusal,
    deadline_after,
    move,
)
from core.process.tables import Migration, MigrationItem


class PlanInvalid(Exception):
    """The plan names the same version twice."""


class VersionMissing(Exception):
    """The plan names a template version that does not exist."""


async def versions_of(conn: AsyncConnection, plan: MigrationPlan) -> tuple[TemplatePublic, TemplatePublic]:
    source = await templates.get_by_code(conn, plan.template_code, plan.from_version)
    target = await templates.get_by_code(conn, plan.template_code, plan.to_version)
    if source is None or target is None:
        missing = plan.from_version if source is None else plan.to_version
        raise VersionMissing(f"template {plan.template_code} has no version {missing}")
    if plan.from_version == plan.to_version:
        raise PlanInvalid("the source and target versions are the same")
    return source, target


def _entity_effect(plan: MigrationPlan, row: Mapping[str, Any], target_entity: str | None, status: str | None) -> str:
    if plan.rules.entity == "keep" or not target_entity or not status:
        return "unchanged"
    types = {e.get("entity") for e in row["created_entities"] or []}
    if target_entity not in types:
        return f"unchanged (the instance has no {target_entity})"
    return f"{target_entity} set to '{status}'"


async def preview(conn: AsyncConnection, plan: MigrationPlan, now: datetime | None = None) -> MigrationPreview:
    """What the plan would do to each active instance it takes, without changing anything."""
    now = now or datetime.now(UTC)
    source, target = await versions_of(conn, plan)
    states = {s.id: s for s in source.workflow_graph.states}
    wanted = plan.filter
    rows = await active_matching(
        conn,
        template_code=plan.template_code,
        version=plan.from_version,
        state_ids=wanted.state_ids,
        started_before=now - timedelta(days=wanted.min_age_days) if wanted.min_age_days is not None else None,
        started_after=now - timedelta(days=wanted.max_age_days) if wanted.max_age_days is not None else None,
        root_entity_id=wanted.root_entity_id,
        limit=MAX_MIGRATION_INSTANCES,
    )
    truncated = len(rows) > MAX_MIGRATION_INSTANCES
    items: list[PreviewItem] = []
    for row in rows[:MAX_MIGRATION_INSTANCES]:
        state = states[row["current_state_id"]]
        approval = PendingApproval.model_validate(row["pending_approval"]) if row["pending_approval"] else None
        found = move(state, approval, target.workflow_graph, plan.mapping, plan.rules)
        base = {"instance_id": str(row["id"]), "from_state_id": state.id, "from_state_name": state.name}
        if isinstance(found, Refusal):
            items.append(
                PreviewItem(**base, outcome="refused", refusal=found, approval="unchanged", entity="unchanged")
            )
            continue
        entered = datetime.fromisoformat(row["entered"]) if row["entered"] else row["started_ts"]
        items.append(
            PreviewItem(
                **base,
                to_state_id=found.target.id,
                to_state_name=found.target.name,
                outcome="migrate",
                approval=found.approval,
                deadline_at=deadline_after(found.target, entered, now, plan.rules),
                entity=_entity_effect(plan, row, found.target.entity_name, found.target.entity_status),
            )
        )
    totals = Counter(i.outcome if i.refusal is None else f"refused:{i.refusal.code}" for i in items)
    return MigrationPreview(
        template_code=plan.template_code,
        from_version=plan.from_version,
        to_version=plan.to_version,
        totals=dict(sorted(totals.items())),
        items=items,
        truncated=truncated,
    )


async def create(
    conn: AsyncConnection, migration_id: uuid.UUID, body: MigrationCreate, found: MigrationPreview, actor: str
) -> None:
    """The migration and one pending item per instance the preview would migrate (refused ones are
    recorded as refused with their reason, so the migration's page says why they stayed)."""
    await conn.execute(
        insert(Migration)
        .values(
            id=migration_id,
            template_code=body.template_code,
            from_version=body.from_version,
            to_version=body.to_version,
            plan=body.model_dump(mode="json"),
            created_by=actor,
        )
        .on_conflict_do_nothing(index_elements=[Migration.id])
    )
    rows = [
        {
            "migration_id": migration_id,
            "instance_id": uuid.UUID(item.instance_id),
            "from_state_id": item.from_state_id,
            "to_state_id": item.to_state_id,
            "outcome": "pending" if item.refusal is None else "refused",
            "message": item.refusal.message if item.refusal else None,
        }
        for item in found.items
    ]
    for start in range(0, len(rows), 1000):
        await conn.execute(insert(MigrationItem).values(rows[start : start + 1000]).on_conflict_do_nothing())


async def pending(conn: AsyncConnection, migration_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    stmt = (
        select(MigrationItem.instance_id)
        .where(MigrationItem.migration_id == migration_id, MigrationItem.outcome == "pending")
        .order_by(MigrationItem.instance_id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).scalars())


async def record_item(
    conn: AsyncConnection, migration_id: uuid.UUID, instance_id: uuid.UUID, outcome: str, message: str | None
) -> None:
    await conn.execute(
        update(MigrationItem)
        .where(MigrationItem.migration_id == migration_id, MigrationItem.instance_id == instance_id)
        .values(outcome=outcome, message=message, updated_ts=func.now())
    )


async def count_pending(conn: AsyncConnection, migration_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(MigrationItem.migration_id == migration_id, MigrationItem.outcome == "pending")
    return int((await conn.execute(stmt)).scalar_one())


async def finish(conn: AsyncConnection, migration_id: uuid.UUID) -> None:
    await conn.execute(
        update(Migration)
        .where(Migration.id == migration_id, Migration.status == "running")
        .values(status="completed", completed_ts=func.now())
    )


async def plan_of(conn: AsyncConnection, migration_id: uuid.UUID) -> tuple[MigrationCreate, str]:
    """A migration's plan and who started it (the actor its updates carry)."""
    stmt = select(Migration.plan, Migration.created_by).where(Migration.id == migration_id)
    raw, created_by = (await conn.execute(stmt)).one()
    return MigrationCreate.model_validate(raw, strict=False), created_by


async def _totals(conn: AsyncConnection, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    stmt = (
        select(MigrationItem.migration_id, MigrationItem.outcome, func.count())
        .where(MigrationItem.migration_id.in_(ids))
        .group_by(MigrationItem.migration_id, MigrationItem.outcome)
    )
    totals: dict[uuid.UUID, dict[str, int]] = {i: {} for i in ids}
    for migration_id, outcome, n in (await conn.execute(stmt)).all():
        totals[migration_id][outcome] = int(n)
    return totals


def _public(row: Any, totals: dict[str, int]) -> MigrationPublic:
    return MigrationPublic(
        id=str(row.id),
        template_code=row.template_code,
        from_version=row.from_version,
        to_version=row.to_version,
        plan=row.plan,
        status=row.status,
        created_by=row.created_by,
        created_ts=row.created_ts,
        completed_ts=row.completed_ts,
        totals=totals,
    )


async def get(conn: AsyncConnection, migration_id: uuid.UUID) -> MigrationPublic | None:
    stmt = select(*Migration.__table__.columns).where(Migration.id == migration_id)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return _public(row, (await _totals(conn, [migration_id]))[migration_id])


async def listing(
    conn: AsyncConnection, template_code: str | None, limit: int, cursor: str | None
) -> Page[MigrationPublic]:
    stmt = select(*Migration.__table__.columns)
    if template_code:
        stmt = stmt.where(Migration.template_code == template_code)
    page = await fetch_page(
        conn,
        stmt,
        order=Order(Migration.created_ts, Migration.id, descending=True),
        limit=limit,
        offset=0,
        cursor=cursor,
        item=lambda r: r,
    )
    totals = await _totals(conn, [r.id for r in page.items])
    return Page(
        items=[_public(r, totals[r.id]) for r in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_cursor=page.next_cursor,
    )


async def items(
    conn: AsyncConnection, migration_id: uuid.UUID, outcome: str | None, limit: int, cursor: str | None
) -> Page[MigrationItemPublic]:
    stmt = select(*MigrationItem.__table__.columns).where(MigrationItem.migration_id == migration_id)
    if outcome:
        stmt = stmt.where(MigrationItem.outcome == outcome)
    return await fetch_page(
        conn,
        stmt,
        order=Order(MigrationItem.updated_ts, MigrationItem.instance_id, descending=False),
        limit=limit,
        offset=0,
        cursor=cursor,
        item=lambda r: MigrationItemPublic(
            instance_id=str(r.instance_id),
            from_state_id=r.from_state_id,
            to_state_id=r.to_state_id,
            outcome=r.outcome,
            message=r.message,
            updated_ts=r.updated_ts,
        ),
    )
