"""Data access of the work queue: definitions, items, the queue, and the one write path of an item
(``record``), used by its workflow so that every change is one transaction, recorded once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.entities.contracts import EntityEventData
from core.entities.tables import Entity
from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications
from core.people import directory
from core.people.directory import Distribution
from core.platform import errors
from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page
from core.platform.paths import PACKS_DIR
from core.work.contracts import (
    DefinitionCreate,
    DefinitionPublic,
    ItemState,
    ItemWrite,
    WorkItemPublic,
)
from core.work.priority import (
    LABEL_RANGES,
    SIGNAL_FIELDS,
    Signals,
    opportunity_score,
    priority_label,
    priority_score,
    risk_score,
)
from core.work.tables import OPEN_STATUSES, WorkDefinition, WorkItem

DEMO_DEFINITIONS_FILE = PACKS_DIR / "work" / "definitions.json"
DEFAULT_ASSIGNEE = "operator"  # a role: every operator sees an item nobody in particular owns


def item_workflow_id(item_id: uuid.UUID | str) -> str:
    return f"work-item-{item_id}"


# ------------------------------------------------------------------ definitions


async def seed_definitions(conn: AsyncConnection) -> None:
    """The seed's three demo definitions (idempotent by name; an admin's edits are kept)."""
    for raw in json.loads(DEMO_DEFINITIONS_FILE.read_text()):
        definition = DefinitionCreate.model_validate(raw)
        await conn.execute(
            insert(WorkDefinition)
            .values(**_definition_values(definition))
            .on_conflict_do_nothing(index_elements=[WorkDefinition.name])
        )


def _definition_values(body: DefinitionCreate) -> dict[str, Any]:
    values = body.model_dump()
    values["trigger_conditions"] = body.trigger_conditions.model_dump(exclude_none=True)
    return values


async def create_definition(conn: AsyncConnection, body: DefinitionCreate) -> DefinitionPublic | None:
    row = (
        await conn.execute(
            insert(WorkDefinition)
            .values(**_definition_values(body))
            .on_conflict_do_nothing(index_elements=[WorkDefinition.name])
            .returning(WorkDefinition.__table__)
        )
    ).first()
    return DefinitionPublic.model_validate(row) if row else None


async def replace_definition(
    conn: AsyncConnection, definition_id: uuid.UUID, body: DefinitionCreate
) -> DefinitionPublic | None:
    row = (
        await conn.execute(
            update(WorkDefinition)
            .where(WorkDefinition.id == definition_id)
            .values(**_definition_values(body), updated_ts=func.now())
            .returning(WorkDefinition.__table__)
        )
    ).first()
    return DefinitionPublic.model_validate(row) if row else None


async def deactivate_definition(conn: AsyncConnection, definition_id: uuid.UUID) -> DefinitionPublic | None:
    row = (
        await conn.execute(
            update(WorkDefinition)
            .where(WorkDefinition.id == definition_id)
            .values(is_active=False, updated_ts=func.now())
            .returning(WorkDefinition.__table__)
        )
    ).first()
    return DefinitionPublic.model_validate(row) if row else None


async def definition_named(conn: AsyncConnection, name: str) -> uuid.UUID | None:
    found = await conn.execute(select(WorkDefinition.id).where(WorkDefinition.name == name))
    return found.scalar_one_or_none()


async def get_definition(conn: AsyncConnection, definition_id: uuid.UUID) -> DefinitionPublic | None:
    row = (await conn.execute(select(WorkDefinition.__table__).where(WorkDefinition.id == definition_id))).first()
    return DefinitionPublic.model_validate(row) if row else None


async def list_definitions(conn: AsyncConnection, *, demo: bool | None, active: bool | None) -> list[DefinitionPublic]:
    stmt = select(WorkDefinition.__table__).order_by(WorkDefinition.name)
    if demo is not None:
        stmt = stmt.where(WorkDefinition.is_demo.is_(demo))
    if active is not None:
        stmt = stmt.where(WorkDefinition.is_active.is_(active))
    return [DefinitionPublic.model_validate(r) for r in (await conn.execute(stmt)).all()]


# ------------------------------------------------------------------ items


def _order() -> Any:
    return WorkDefinition.trigger_conditions["order"].as_integer()


def _items() -> Select[Any]:
    return (
        select(
            WorkItem.__table__,
            WorkDefinition.name.label("definition_name"),
            WorkDefinition.workflow_type,
            _order().label("order"),
            WorkDefinition.trigger_conditions["sla"]["escalate_to"].astext.label("sla_escalate_to"),
            Entity.name.label("entity_name"),
        )
        .join(WorkDefinition, WorkDefinition.id == WorkItem.definition_id)
        .join(Entity, Entity.id == WorkItem.entity_id)
    )


def _public(row: Any) -> WorkItemPublic:
    values = dict(row._mapping)
    values["priority_label"] = priority_label(values["priority_score"])
    values["workflow_id"] = item_workflow_id(values["id"])
    return WorkItemPublic.model_validate(values)


async def get_item(conn: AsyncConnection, item_id: uuid.UUID) -> WorkItemPublic | None:
    row = (await conn.execute(_items().where(WorkItem.id == item_id))).first()
    return _public(row) if row else None


async def get_items(conn: AsyncConnection, ids: list[uuid.UUID]) -> list[WorkItemPublic]:
    """Several items in one query, in the order of ``ids`` (missing ones left out)."""
    found = {row.id: _public(row) for row in (await conn.execute(_items().where(WorkItem.id.in_(ids)))).all()}
    return [found[i] for i in ids if i in found]


async def queue(conn: AsyncConnection, *, assignees: list[str] | None, demo: bool, limit: int) -> list[WorkItemPublic]:
    """Open items: in demo mode the demo items by their sequence order, otherwise by priority."""
    stmt = _items().where(WorkItem.status.in_(OPEN_STATUSES)).limit(limit)
    if assignees is not None:
        stmt = stmt.where(WorkItem.assignee.in_(assignees))
    if demo:
        stmt = stmt.where(WorkItem.is_demo.is_(True)).order_by(_order(), WorkItem.created_ts)
    else:
        stmt = stmt.order_by(WorkItem.priority_score.desc(), WorkItem.created_ts, WorkItem.id)
    return [_public(r) for r in (await conn.execute(stmt)).all()]


async def queue_page(
    conn: AsyncConnection,
    *,
    workflow_type: str | None = None,
    label: str | None = None,
    assignees: list[str] | None = None,
    due_before: datetime | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WorkItemPublic]:
    """The queue as the console shows it: open items (or those of one status), highest priority first,
    filtered by type, priority label, assignees (or escalation users; None: anyone's) and due date;
    keyset-paged."""
    stmt = _items()
    stmt = stmt.where(WorkItem.status == status) if status else stmt.where(WorkItem.status.in_(OPEN_STATUSES))
    if workflow_type:
        stmt = stmt.where(WorkDefinition.workflow_type == workflow_type)
    if label in LABEL_RANGES:
        low, high = LABEL_RANGES[label]
        stmt = stmt.where(WorkItem.priority_score >= low, WorkItem.priority_score < high)
    if assignees is not None:
        stmt = stmt.where(WorkItem.assignee.in_(assignees) | WorkItem.escalation_user_id.in_(assignees))
    if due_before is not None:
        stmt = stmt.where(WorkItem.due_at <= due_before)
    order = Order(WorkItem.priority_score, WorkItem.created_ts, WorkItem.id, descending=True)
    return await fetch_page(conn, stmt, order=order, limit=limit, offset=0, cursor=cursor, item=_public)


async def workflow_types(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(WorkDefinition.workflow_type).distinct().order_by(WorkDefinition.workflow_type))
    return list(rows.scalars())


async def escalated_to(conn: AsyncConnection, users: list[str]) -> list[WorkItemPublic]:
    """Open items escalated to one of ``users`` (names or roles; they may act besides the assignee)."""
    stmt = (
        _items()
        .where(WorkItem.status.in_(OPEN_STATUSES), WorkItem.escalation_user_id.in_(users))
        .order_by(WorkItem.priority_score.desc())
        .limit(500)
    )
    return [_public(r) for r in (await conn.execute(stmt)).all()]


async def demo_items(conn: AsyncConnection, *, assignee: str) -> list[WorkItemPublic]:
    """The assignee's demo items, newest of each definition, in sequence order."""
    stmt = (
        _items()
        .where(WorkItem.is_demo.is_(True), WorkItem.assignee == assignee)
        .order_by(_order(), WorkItem.created_ts.desc())
    )
    latest: dict[uuid.UUID, WorkItemPublic] = {}
    for row in (await conn.execute(stmt)).all():
        latest.setdefault(row.definition_id, _public(row))
    return sorted(latest.values(), key=lambda i: i.order or 0)


def _due(definition: DefinitionPublic, now: datetime) -> datetime | None:
    """When an item of ``definition`` created at ``now`` is due (its SLA), if it has one."""
    sla = definition.trigger_conditions.get("sla")
    return now + timedelta(days=sla["days"]) if isinstance(sla, dict) else None


async def create_items(
    conn: AsyncConnection, wanted: list[tuple[DefinitionPublic, uuid.UUID, str]], *, now: datetime
) -> list[uuid.UUID]:
    """An open item per (definition, entity), creating those missing; returns every one of them. Never
    two open items for one definition and entity (a partial unique index), whoever asks concurrently."""
    ids: list[uuid.UUID] = []
    for definition, entity_id, wanted_assignee in wanted:
        shared = definition.trigger_conditions.get("distribution")
        rule = Distribution.model_validate(shared) if isinstance(shared, dict) else None
        choice = await directory.choose(conn, rule, now) if rule is not None else None
        if choice is None:  # not shared, or everyone is at their cap: the pool (or the person) holds it
            choice = await directory.direct(conn, rule.pool if rule is not None else wanted_assignee, now)
        assignee = choice.assignee
        fields = (await conn.execute(select(Entity.fields).where(Entity.id == entity_id))).scalar_one()
        score = priority_score(
            definition.workflow_type, snooze_until=None, now=now, signals=Signals.of(fields), snoozed=False
        )
        created = (
            await conn.execute(
                insert(WorkItem)
                .values(
                    definition_id=definition.id,
                    entity_id=entity_id,
                    assignee=assignee,
                    on_behalf_of=choice.on_behalf_of,
                    is_demo=definition.is_demo,
                    priority_score=score,
                    due_at=_due(definition, now),
                )
                .on_conflict_do_nothing(
                    index_elements=[WorkItem.definition_id, WorkItem.entity_id],
                    index_where=text("status IN ('not_started', 'underway', 'snoozed')"),
                )
                .returning(WorkItem.id)
            )
        ).scalar_one_or_none()
        if created is not None and choice.how != "direct":
            await directory.log_change(
                conn, item=f"work:{created}", from_assignee=None, choice=choice, actor="distribution"
            )
        if created is None:
            created = (
                await conn.execute(
                    select(WorkItem.id).where(
                        WorkItem.definition_id == definition.id,
                        WorkItem.entity_id == entity_id,
                        WorkItem.status.in_(OPEN_STATUSES),
                    )
                )
            ).scalar_one()
        ids.append(created)
    return ids


async def entity_exists(conn: AsyncConnection, entity_id: uuid.UUID) -> bool:
    found = await conn.execute(select(Entity.id).where(Entity.id == entity_id, Entity.deleted_ts.is_(None)))
    return found.first() is not None


async def unstarted(conn: AsyncConnection, ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Open items whose workflow is not known to be started (a crash between insert and start)."""
    stmt = select(WorkItem.id).where(WorkItem.workflow_started.is_(False), WorkItem.status.in_(OPEN_STATUSES))
    if ids is not None:
        stmt = stmt.where(WorkItem.id.in_(ids))
    return list((await conn.execute(stmt.limit(10_000))).scalars())


async def mark_started(conn: AsyncConnection, ids: list[uuid.UUID]) -> None:
    if ids:
        await conn.execute(update(WorkItem).where(WorkItem.id.in_(ids)).values(workflow_started=True))


async def record(conn: AsyncConnection, write: ItemWrite, *, max_data_bytes: int) -> ItemState:
    """Apply one step of an item's workflow: a change, or (without one) a rescore. Step ``version``
    is recorded once: a retried step finds the row at that version and changes nothing."""
    row = (
        await conn.execute(
            select(WorkItem.__table__, WorkDefinition.workflow_type, Entity.fields.label("entity_fields"))
            .join(WorkDefinition, WorkDefinition.id == WorkItem.definition_id)
            .join(Entity, Entity.id == WorkItem.entity_id)
            .where(WorkItem.id == write.item_id)
            .with_for_update(of=WorkItem)
        )
    ).one()
    if row.version >= write.version:  # recorded already (a retry after the commit)
        item = await get_item(conn, write.item_id)
        return ItemState(status=row.status, snooze_until=row.snooze_until, version=row.version, item=item)
    values: dict[str, Any] = {"version": write.version, "updated_ts": write.now}
    status, snooze_until = row.status, row.snooze_until
    change = write.change
    if change is not None and change.action == "snooze":
        assert change.days is not None
        status, snooze_until = "snoozed", write.now + timedelta(days=change.days)
        values.update(status=status, snooze_until=snooze_until, snooze_days=change.days, snoozed_at=write.now)
    elif change is not None and change.action == "skip":
        status = "skipped"
        values.update(status=status, skipped_at=write.now, skip_reason=change.reason)
    elif change is not None and change.action == "escalate":
        values.update(escalation_user_id=change.escalation_user_id, escalated_at=write.now)
        await insert_notifications(
            conn,
            [
                NotificationSpec(
                    recipient=str(change.escalation_user_id),
                    template="work_item_escalated",
                    subject="A work item was escalated to you",
                    body=f"{change.actor} escalated work item {write.item_id} to you; it stays assigned to "
                    f"{row.assignee}.",
                )
            ],
            dedupe_prefix=f"work-item:{write.item_id}:{write.version}",
            source=item_workflow_id(write.item_id),
            entity_id=row.entity_id,
            ts=write.now,
        )
    elif change is not None and change.action == "status":
        assert change.status is not None
        status = change.status
        values["status"] = status
        if status == "underway" and row.started_at is None:
            values["started_at"] = write.now
        if status == "completed":
            values["completed_at"] = write.now
            values.setdefault("started_at", row.started_at or write.now)
        if status in ("not_started", "underway"):
            snooze_until = None
            values["snooze_until"] = None
        if change.execution_data:
            merged = {**row.execution_data, **change.execution_data}
            size = len(json.dumps(merged, separators=(",", ":"), default=str).encode())
            if size > max_data_bytes:
                raise errors.PAYLOAD_TOO_LARGE.error(
                    f"the item's execution_data would be {size} bytes after this change; it may hold at most "
                    f"{max_data_bytes} (TRELLIS_ENTITY_MAX_BYTES). Nothing was changed: send less, or replace keys "
                    "instead of adding new ones"
                )
            values["execution_data"] = merged
    values["priority_score"] = priority_score(
        row.workflow_type,
        snooze_until=snooze_until,
        now=write.now,
        signals=Signals.of(row.entity_fields),
        snoozed=status == "snoozed",
    )
    await conn.execute(update(WorkItem).where(WorkItem.id == write.item_id).values(**values))
    item = await get_item(conn, write.item_id)
    return ItemState(status=status, snooze_until=snooze_until, version=write.version, item=item)


async def rescore_open(conn: AsyncConnection, *, now: datetime, entity_ids: list[uuid.UUID] | None = None) -> int:
    """Recompute the score of every open item (the seed's ``update_all_workflow_priorities``), or of
    some entities' items. Only the score changes, so this needs no step of the items' workflows."""
    stmt = (
        select(WorkItem.id, WorkItem.status, WorkItem.snooze_until, WorkItem.priority_score)
        .add_columns(WorkDefinition.workflow_type, Entity.fields)
        .join(WorkDefinition, WorkDefinition.id == WorkItem.definition_id)
        .join(Entity, Entity.id == WorkItem.entity_id)
        .where(WorkItem.status.in_(OPEN_STATUSES))
        .with_for_update(of=WorkItem, skip_locked=True)
    )
    if entity_ids is not None:
        stmt = stmt.where(WorkItem.entity_id.in_(entity_ids))
    changed = 0
    for row in (await conn.execute(stmt)).all():
        score = priority_score(
            row.workflow_type,
            snooze_until=row.snooze_until,
            now=now,
            signals=Signals.of(row.fields),
            snoozed=row.status == "snoozed",
        )
        if score != row.priority_score:
            await conn.execute(update(WorkItem).where(WorkItem.id == row.id).values(priority_score=score))
            changed += 1
    return changed


async def rescore_on_events(conn: AsyncConnection, events: list[EntityEventData]) -> None:
    """An outbox subscriber: entities whose signal fields changed get their open items rescored, in the
    transaction that marks the events dispatched (idempotent: a rescore computes the same score)."""
    changed: set[uuid.UUID] = set()
    for event in events:
        if event.entity_id is None or event.event_kind not in ("update", "field_change"):
            continue
        before = event.old_entity.fields if event.old_entity else {}
        after = event.new_entity.fields if event.new_entity else {}
        if event.field_name in SIGNAL_FIELDS or any(before.get(f) != after.get(f) for f in SIGNAL_FIELDS):
            changed.add(uuid.UUID(event.entity_id))
    if changed:
        await rescore_open(conn, now=datetime.now(UTC), entity_ids=sorted(changed))


async def interpret(
    conn: AsyncConnection, *, now: datetime, entity_ids: list[uuid.UUID] | None = None
) -> tuple[int, list[uuid.UUID]]:
    """The seed's signal interpreter: an item for each active, non-demo definition whose thresholds
    an entity's signals meet. Returns how many entities were read and the ids of the items it wants
    (existing open ones included: creating is idempotent)."""
    definitions = [
        d
        for d in await list_definitions(conn, demo=False, active=True)
        if {"opportunity_score_min", "risk_score_min"} & set(d.trigger_conditions)
    ]
    seen = 0
    wanted: list[tuple[DefinitionPublic, uuid.UUID, str]] = []
    for entity_type in sorted({d.trigger_conditions.get("entity_type", "customer") for d in definitions}):
        stmt = select(Entity.id, Entity.fields).where(
            and_(Entity.entity_type == entity_type, Entity.deleted_ts.is_(None))
        )
        if entity_ids is not None:
            stmt = stmt.where(Entity.id.in_(entity_ids))
        for entity in (await conn.execute(stmt)).all():
            seen += 1
            scores = {
                "opportunity_score_min": opportunity_score(entity.fields),
                "risk_score_min": risk_score(entity.fields),
            }
            owner = entity.fields.get("assignee")
            for d in definitions:
                if d.trigger_conditions.get("entity_type", "customer") != entity_type:
                    continue
                thresholds = {k: v for k, v in d.trigger_conditions.items() if k in scores}
                if all(scores[k] >= v for k, v in thresholds.items()):
                    assignee = owner if isinstance(owner, str) and 0 < len(owner) <= 200 else DEFAULT_ASSIGNEE
                    wanted.append((d, entity.id, assignee))
    existing = {
        (r.definition_id, r.entity_id)
        for r in (
            await conn.execute(
                select(WorkItem.definition_id, WorkItem.entity_id).where(WorkItem.status.in_(OPEN_STATUSES))
            )
        ).all()
    }
    fresh = [w for w in wanted if (w[0].id, w[1]) not in existing]
    return seen, await create_items(conn, fresh, now=now)


async def rebalance(conn: AsyncConnection, *, now: datetime, limit: int = 200) -> int:
    """Hand out items a role pool holds because everyone was at their cap, now that loads changed: each to
    the person its definition's distribution chooses, until no one has room. The number handed out."""
    rows = (
        await conn.execute(
            select(WorkItem.id, WorkItem.assignee, WorkDefinition.trigger_conditions)
            .join(WorkDefinition, WorkDefinition.id == WorkItem.definition_id)
            .where(
                WorkItem.status.in_(OPEN_STATUSES),
                WorkDefinition.trigger_conditions["distribution"]["pool"].astext == WorkItem.assignee,
            )
            .order_by(WorkItem.priority_score.desc(), WorkItem.created_ts)
            .limit(limit)
            .with_for_update(of=WorkItem, skip_locked=True)
        )
    ).all()
    handed = 0
    for row in rows:
        choice = await directory.choose(conn, Distribution.model_validate(row.trigger_conditions["distribution"]), now)
        if choice is None:
            continue
        await reassign_item(conn, row.id, choice, actor="rebalance", reason="a person's load dropped", now=now)
        handed += 1
    return handed


async def reassign_item(
    conn: AsyncConnection,
    item_id: uuid.UUID,
    choice: directory.Choice,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
) -> WorkItemPublic | None:
    """Give an open item to ``choice``'s assignee, logged with who and why; None when it is not open."""
    before = (
        await conn.execute(
            select(WorkItem.assignee)
            .where(WorkItem.id == item_id, WorkItem.status.in_(OPEN_STATUSES))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if before is None:
        return None
    await conn.execute(
        update(WorkItem)
        .where(WorkItem.id == item_id)
        .values(assignee=choice.assignee, on_behalf_of=choice.on_behalf_of, updated_ts=now)
    )
    await directory.log_change(
        conn, item=f"work:{item_id}", from_assignee=before, choice=choice, actor=actor, reason=reason
    )
    return await get_item(conn, item_id)


async def open_items_of(conn: AsyncConnection, assignee: str, limit: int = 1000) -> list[uuid.UUID]:
    rows = await conn.execute(
        select(WorkItem.id).where(WorkItem.assignee == assignee, WorkItem.status.in_(OPEN_STATUSES)).limit(limit)
    )
    return list(rows.scalars())
