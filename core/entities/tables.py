"""Tables of business entities: the generic entity store, parent/child links, and the transactional
outbox of entity events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class Entity(Base):
    """Generic store for business entities of any type (customer, quote, order, task, …)."""

    __tablename__ = "d_entity"
    __table_args__ = (
        Index("idx_entity_type_status", "entity_type", "status"),
        Index("idx_entity_type_created", "entity_type", "created_ts"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    entity_type: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_ts: Mapped[datetime] = created_now()
    updated_ts: Mapped[datetime] = created_now()
    deleted_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class EntityLink(Base):
    """Parent/child links between entities (the seed's d_entity_id_map)."""

    __tablename__ = "d_entity_id_map"
    __table_args__ = (
        UniqueConstraint("parent_entity_id", "child_entity_id", name="uq_entity_link"),
        Index("idx_entity_link_child", "child_entity_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    parent_entity_type: Mapped[str] = mapped_column(String(100))
    parent_entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    child_entity_type: Mapped[str] = mapped_column(String(100))
    child_entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    relationship_type: Mapped[str] = mapped_column(Text, server_default="contains")
    created_ts: Mapped[datetime] = created_now()


class EntityEvent(Base):
    """Transactional outbox: one row per entity change, committed with the change itself.

    The dispatcher starts one workflow per row, with the row id in the workflow id, and marks it
    dispatched; a crash between the two neither loses nor doubles the event."""

    __tablename__ = "f_entity_event"
    __table_args__ = (
        Index("idx_entity_event_pending", "created_ts", postgresql_where=text("dispatched_ts IS NULL")),
        Index("idx_entity_event_entity", "entity_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    entity_type: Mapped[str] = mapped_column(String(100))
    event_kind: Mapped[str] = mapped_column(Text)  # create | update | delete | status_change | field_change
    field_name: Mapped[str | None] = mapped_column(Text)
    old_value: Mapped[Any | None] = mapped_column(JSONB)
    new_value: Mapped[Any | None] = mapped_column(JSONB)
    old_entity: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_entity: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    causation: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    # A field or status change carries no snapshots of its own: they are on the change's primary row.
    snapshot_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    dispatched_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
