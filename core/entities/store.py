"""The entity store: every create, update and soft delete of a business entity, and the outbox rows
(entity events) that the same transaction commits with it.

Used by the entity API, by process-instance state entries and by automation actions, so every change
emits events the same way. Event ids are derived from (entity, version, kind, field): replaying the
same change (a retried activity) inserts nothing new, and an unchanged update emits nothing.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.entities.contracts import EntityLimits, EntityPublic, check_entity
from core.entities.tables import Entity, EntityEvent, EntityLink
from core.platform import direct
from core.platform.contracts import Page
from core.platform.ids import derived_id
from core.platform.pages import Order, fetch_page

# The outbox dispatcher's LISTEN channel; the event log's trigger (migration 0020) notifies it.
OUTBOX_CHANNEL = "trellis_outbox"
DEFAULT_LIMITS = EntityLimits()
COLUMNS = (
    Entity.id,
    Entity.entity_type,
    Entity.name,
    Entity.status,
    Entity.fields,
    Entity.version,
    Entity.created_ts,
    Entity.updated_ts,
    Entity.deleted_ts,
)


def snapshot(row: Any) -> dict[str, Any]:
    """An entity as JSON: what events carry and what templates and conditions see."""
    return {
        "id": str(row.id),
        "entity_type": row.entity_type,
        "name": row.name,
        "status": row.status,
        "fields": dict(row.fields or {}),
        "version": row.version,
        "created_ts": row.created_ts.isoformat() if row.created_ts else None,
        "updated_ts": row.updated_ts.isoformat() if row.updated_ts else None,
        "deleted": row.deleted_ts is not None,
    }


async def load(conn: AsyncConnection, entity_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    row = await direct.first(conn, _load_statement(lock), {"entity_id": entity_id})
    return snapshot(row) if row else None


@functools.cache
def _load_statement(lock: bool) -> Any:
    """``load``'s read, built once per lock mode."""
    stmt = select(*COLUMNS).where(Entity.id == bindparam("entity_id"))
    return stmt.with_for_update() if lock else stmt


async def _emit(
    conn: AsyncConnection,
    *,
    kind: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    ts: datetime,
    actor: str | None,
    causation: list[dict[str, Any]],
    changes: list[tuple[str, Any, Any]] = (),  # type: ignore[assignment]
) -> None:
    primary = _event(kind, None, None, None, old, new, ts, actor, causation)
    rows = [primary]
    # One snapshot per change: field and status changes point at the primary row's snapshots instead
    # of repeating them (a change of 500 fields would otherwise store 1,000 copies of the entity).
    for field, before, after in changes:
        rows.append(_event("field_change", field, before, after, None, new, ts, actor, causation, primary["id"]))
    if old is not None and old["status"] != new["status"]:
        status = ("status_change", "status", old["status"], new["status"])
        rows.append(_event(*status, None, new, ts, actor, causation, primary["id"]))
    # The insert wakes the outbox dispatcher on commit: a trigger on the event log sends the NOTIFY
    # (migration 0020), so this write spends no round trip of its own on it. Nothing is read back: in a
    # pipeline (a state entry) it travels with the transaction's next statement or its end.
    await direct.send(conn, _events_statement(), rows)


@functools.cache
def _events_statement() -> Any:
    """The event log's insert, built once: each column an event row (``_event``) carries is a parameter,
    which is every column but ``dispatched_ts`` (the dispatcher's)."""
    table = cast(Table, EntityEvent.__table__)
    values = {c.name: bindparam(c.name, type_=c.type) for c in table.c if c.name != "dispatched_ts"}
    return insert(table).values(values).on_conflict_do_nothing(index_elements=[table.c.id])


def _event(
    kind: str,
    field: str | None,
    before: Any,
    after: Any,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    ts: datetime,
    actor: str | None,
    causation: list[dict[str, Any]],
    snapshot_event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    shared = snapshot_event_id is not None
    return {
        "id": derived_id("entity-event", new["id"], new["version"], kind, field or ""),
        "snapshot_event_id": snapshot_event_id,
        "entity_id": uuid.UUID(new["id"]),
        "entity_type": new["entity_type"],
        "event_kind": kind,
        "field_name": field,
        "old_value": before,
        "new_value": after,
        "old_entity": None if shared else old,
        "new_entity": None if shared else new,
        "causation": causation,
        "actor": actor,
        "created_ts": ts,
    }


async def create(
    conn: AsyncConnection,
    *,
    entity_id: uuid.UUID,
    entity_type: str,
    name: str,
    status: str | None,
    fields: dict[str, Any],
    ts: datetime,
    actor: str | None,
    causation: list[dict[str, Any]] | None = None,
    parent: tuple[str, uuid.UUID] | None = None,
    limits: EntityLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Create (or, on a retry, find) the entity; link it under ``parent``; emit its create event.
    Raises EntityTooLarge over the limits."""
    check_entity(name, fields, limits)
    inserted = await direct.first(
        conn,
        _create_statement(),
        {"id": entity_id, "entity_type": entity_type, "name": name, "status": status, "fields": fields, "ts": ts},
    )
    if parent is not None:
        await link(conn, parent_type=parent[0], parent_id=parent[1], child_type=entity_type, child_id=entity_id, ts=ts)
    if inserted is None:
        existing = await load(conn, entity_id)
        assert existing is not None
        return existing
    created = snapshot(inserted)
    await _emit(conn, kind="create", old=None, new=created, ts=ts, actor=actor, causation=causation or [])
    return created


async def change(
    conn: AsyncConnection,
    entity_id: uuid.UUID,
    *,
    ts: datetime,
    actor: str | None,
    name: str | None = None,
    status: str | None = None,
    set_fields: dict[str, Any] | None = None,
    unset_fields: list[str] | None = None,
    causation: list[dict[str, Any]] | None = None,
    expected_version: int | None = None,
    limits: EntityLimits = DEFAULT_LIMITS,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Apply a change; emit update, status_change and one field_change per changed field.

    Returns (old, new), with old == new when nothing changed (then nothing is emitted), or None when
    the entity does not exist or is deleted. Raises VersionConflict on a stale ``expected_version``.

    One statement reads the row under its lock and writes the change (``UPDATE … FROM (SELECT … FOR
    UPDATE) AS prior … RETURNING`` the prior and the new row), instead of a locked read and then an
    update: one round trip fewer on every state entry (issue 27). Only a real change is written, so an
    unchanged entity keeps its version. The limits are checked on the returned row: EntityTooLarge is
    raised after the write, so the caller's transaction must not commit (every caller lets it propagate
    out of its transaction, which rolls the write back).
    """
    statement = _change_statement(
        name is not None, status is not None, bool(unset_fields), expected_version is not None
    )
    params: dict[str, Any] = {"entity_id": entity_id, "set_fields": set_fields or {}, "ts": ts}
    if name is not None:
        params["name"] = name
    if status is not None:
        params["status"] = status
    if unset_fields:
        params["unset_fields"] = list(unset_fields)
    if expected_version is not None:
        params["expected_version"] = expected_version
    written = await direct.first(conn, statement, params)
    if written is None:  # missing, deleted, a stale version, or nothing to change: which one, read now
        old = await load(conn, entity_id, lock=True)
        if old is None or old["deleted"]:
            return None
        if expected_version is not None and expected_version != old["version"]:
            raise VersionConflict(old["version"])
        return old, old
    new = snapshot(written)
    old = snapshot(_Prior(written))
    changes = [
        (k, old["fields"].get(k), new["fields"].get(k))
        for k in sorted(set(old["fields"]) | set(new["fields"]))
        if old["fields"].get(k) != new["fields"].get(k) or (k in old["fields"]) != (k in new["fields"])
    ]
    if new["name"] != old["name"]:
        changes.insert(0, ("name", old["name"], new["name"]))
    check_entity(new["name"], new["fields"], limits)
    await _emit(conn, kind="update", old=old, new=new, ts=ts, actor=actor, causation=causation or [], changes=changes)
    return old, new


@functools.cache
def _create_statement() -> Any:
    """``create``'s insert, built once (its values are parameters)."""
    table = cast(Table, Entity.__table__)
    ts = bindparam("ts", type_=table.c.created_ts.type)
    return (
        insert(table)
        .values(
            {
                **{c: bindparam(c, type_=table.c[c].type) for c in ("id", "entity_type", "name", "status", "fields")},
                "created_ts": ts,
                "updated_ts": ts,
            }
        )
        .on_conflict_do_nothing(index_elements=[table.c.id])
        .returning(*(table.c[c.key] for c in COLUMNS))
    )


@functools.cache
def _change_statement(named: bool, statused: bool, unsetting: bool, versioned: bool) -> Any:
    """``change``'s statement for which of name, status, fields to unset and expected version it is given,
    built once per combination: its values are parameters, so no change builds or keys it again."""
    table = cast(Table, Entity.__table__)
    prior = (
        select(*(table.c[c.key] for c in COLUMNS))
        .where(table.c.id == bindparam("entity_id"))
        .with_for_update()
        .subquery("prior")
    )
    fields: Any = prior.c.fields.op("||")(bindparam("set_fields", type_=JSONB))
    if unsetting:
        fields = fields.op("-")(bindparam("unset_fields", type_=ARRAY(Text)))
    new_name: Any = bindparam("name", type_=Text) if named else prior.c.name
    new_status: Any = bindparam("status", type_=Text) if statused else prior.c.status
    conditions = [
        table.c.id == prior.c.id,
        prior.c.deleted_ts.is_(None),
        or_(
            new_name.is_distinct_from(prior.c.name),
            new_status.is_distinct_from(prior.c.status),
            fields.is_distinct_from(prior.c.fields),
        ),
    ]
    if versioned:
        conditions.append(prior.c.version == bindparam("expected_version"))
    return (
        update(table)
        .where(*conditions)
        .values(
            name=new_name,
            status=new_status,
            fields=fields,
            version=prior.c.version + 1,
            updated_ts=bindparam("ts", type_=table.c.updated_ts.type),
        )
        .returning(*(table.c[c.key] for c in COLUMNS), *(c.label(f"prior_{c.key}") for c in prior.c))
    )


class _Prior:
    """The prior row's columns of a change's RETURNING (``prior_<column>``), read as a row."""

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, f"prior_{name}")


async def soft_delete(
    conn: AsyncConnection,
    entity_id: uuid.UUID,
    *,
    ts: datetime,
    actor: str | None,
    causation: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    old = await load(conn, entity_id, lock=True)
    if old is None or old["deleted"]:
        return None
    row = (
        await conn.execute(
            update(Entity)
            .where(Entity.id == entity_id)
            .values(deleted_ts=ts, active_flag=False, version=Entity.version + 1, updated_ts=ts)
            .returning(*COLUMNS)
        )
    ).one()
    new = snapshot(row)
    await _emit(conn, kind="delete", old=old, new=new, ts=ts, actor=actor, causation=causation or [])
    return new


async def link(
    conn: AsyncConnection,
    *,
    parent_type: str,
    parent_id: uuid.UUID,
    child_type: str,
    child_id: uuid.UUID,
    ts: datetime,
) -> None:
    if parent_id == child_id:
        return
    row = {
        "parent_entity_type": parent_type,
        "parent_entity_id": parent_id,
        "child_entity_type": child_type,
        "child_entity_id": child_id,
        "created_ts": ts,
    }
    await direct.send(conn, _link_statement(), [row])


@functools.cache
def _link_statement() -> Any:
    """``link``'s insert, built once (its values are parameters)."""
    table = cast(Table, EntityLink.__table__)
    keys = ("parent_entity_type", "parent_entity_id", "child_entity_type", "child_entity_id", "created_ts")
    values = {c: bindparam(c, type_=table.c[c].type) for c in keys}
    return insert(table).values(values).on_conflict_do_nothing(constraint="uq_entity_link")


async def related(conn: AsyncConnection, entity_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Live parents and children of an entity, as snapshots: {"parents": [...], "children": [...]}."""
    parents = select(EntityLink.parent_entity_id).where(EntityLink.child_entity_id == entity_id)
    children = select(EntityLink.child_entity_id).where(EntityLink.parent_entity_id == entity_id)
    result: dict[str, list[dict[str, Any]]] = {}
    for key, ids in (("parents", parents), ("children", children)):
        rows = await conn.execute(
            select(*COLUMNS).where(Entity.id.in_(ids), Entity.deleted_ts.is_(None)).order_by(Entity.created_ts)
        )
        result[key] = [snapshot(r) for r in rows]
    return result


class VersionConflict(Exception):
    def __init__(self, current_version: int) -> None:
        super().__init__(f"the entity is at version {current_version}")
        self.current_version = current_version


async def find_live(conn: AsyncConnection, entity_id: uuid.UUID) -> dict[str, Any] | None:
    """The entity unless it does not exist or is deleted."""
    found = await load(conn, entity_id)
    return found if found is not None and not found["deleted"] else None


async def entities_page(
    conn: AsyncConnection,
    entity_type: str,
    *,
    status: str | None,
    name: str | None,
    include_deleted: bool,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> Page[EntityPublic]:
    stmt = select(*COLUMNS).where(Entity.entity_type == entity_type)
    if status is not None:
        stmt = stmt.where(Entity.status == status)
    if name is not None:
        pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Entity.name.ilike(f"%{pattern}%"))
    if not include_deleted:
        stmt = stmt.where(Entity.deleted_ts.is_(None))
    return await fetch_page(
        conn,
        stmt,
        order=Order(Entity.created_ts, Entity.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=lambda row: EntityPublic.model_validate(snapshot(row)),
    )


async def record_external_event(
    conn: AsyncConnection, source: str, webhook_id: str, key: str | None, payload: dict[str, Any], ts: datetime
) -> tuple[uuid.UUID, bool]:
    """An event posted to POST /api/v1/events/{source}, as an outbox row (entity_type: the source,
    event_kind: external_event, new_value: {key, payload}) for automation rules and waiting step
    executions. Its id derives from (source, webhook-id): a replayed request records nothing. The id,
    and whether this call recorded it."""
    event_id = derived_id("external-event", source, webhook_id)
    inserted = await conn.execute(
        insert(EntityEvent)
        .values(
            id=event_id,
            entity_id=None,
            entity_type=source,
            event_kind="external_event",
            new_value={"key": key, "payload": payload, "webhook_id": webhook_id},
            actor=f"source:{source}",
            created_ts=ts,
        )
        .on_conflict_do_nothing(index_elements=[EntityEvent.id])
        .returning(EntityEvent.id)
    )
    if inserted.first() is None:
        return event_id, False
    return event_id, True  # the event log's trigger wakes the dispatcher on commit
