"""Entity store writes shared by every workload (process states now; automation actions later).

Each function runs inside the caller's transaction and is idempotent: ids are chosen by the caller
(derived from the workflow and step), inserts do nothing on conflict, updates set absolute values.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Entity, EntityLink


async def insert_entity(
    conn: AsyncConnection,
    *,
    entity_id: uuid.UUID,
    entity_type: str,
    name: str,
    status: str | None,
    fields: dict[str, Any],
    ts: datetime,
) -> None:
    await conn.execute(
        insert(Entity)
        .values(
            id=entity_id,
            entity_type=entity_type,
            name=name,
            status=status,
            fields=fields,
            created_ts=ts,
            updated_ts=ts,
        )
        .on_conflict_do_nothing(index_elements=[Entity.id])
    )


async def set_entity_status(
    conn: AsyncConnection,
    *,
    entity_id: uuid.UUID,
    status: str,
    merge_fields: dict[str, Any],
    ts: datetime,
) -> bool:
    """Set the status and merge fields; False when the entity does not exist or is deleted."""
    values: dict[str, Any] = {"status": status, "updated_ts": ts}
    if merge_fields:
        values["fields"] = Entity.fields.op("||")(merge_fields)
    result = await conn.execute(
        update(Entity).where(Entity.id == entity_id, Entity.deleted_ts.is_(None)).values(**values).returning(Entity.id)
    )
    return result.first() is not None


async def link_entities(
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
    await conn.execute(
        insert(EntityLink)
        .values(
            parent_entity_type=parent_type,
            parent_entity_id=parent_id,
            child_entity_type=child_type,
            child_entity_id=child_id,
            created_ts=ts,
        )
        .on_conflict_do_nothing(constraint="uq_entity_link")
    )
