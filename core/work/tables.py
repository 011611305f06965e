"""Work queue tables (seed 001): definitions of kinds of work, and the items of work people owe.

Seed names: ``workflow_definitions`` is ``work_definition``; the orchestrator columns the seed adds to
``workflow_executions`` make ``work_item`` (``assigned_csm_id`` is ``assignee``, a principal name;
``customer_id`` is ``entity_id``, any entity). Added: ``escalated_at``, ``due_at`` (the SLA), ``version`` (the item
workflow's step counter, which makes a retried write a no-op), ``workflow_started``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.entities.tables import Entity
from core.platform.database import Base, created_now, uuid_pk

WORK_TYPES = ("opportunity", "risk", "strategic", "renewal", "custom")
OPEN_STATUSES = ("not_started", "underway", "snoozed")


class WorkDefinition(Base):
    __tablename__ = "work_definition"
    __table_args__ = (
        CheckConstraint(f"workflow_type IN {WORK_TYPES}", name="ck_work_definition_type"),
        Index("idx_work_definitions_type", "workflow_type"),
        Index("idx_work_definitions_active", "is_active"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, unique=True)
    workflow_type: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    trigger_conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    priority_weight: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_ts: Mapped[datetime] = created_now()
    updated_ts: Mapped[datetime] = created_now()


class WorkItem(Base):
    __tablename__ = "work_item"
    __table_args__ = (
        CheckConstraint(
            "status IN ('not_started', 'underway', 'completed', 'snoozed', 'skipped')", name="ck_work_item_status"
        ),
        Index("idx_work_items_assignee", "assignee", "status"),
        Index("idx_work_items_entity", "entity_id"),
        Index("idx_work_items_status", "status"),
        Index("idx_work_items_priority", text("priority_score DESC")),
        Index("idx_work_items_snooze", "snooze_until", postgresql_where=text("status = 'snoozed'")),
        Index("idx_work_items_not_started", "created_ts", postgresql_where=text("status = 'not_started'")),
        # The signal interpreter and demo initialisation are idempotent: one open item per kind and entity.
        Index(
            "uq_work_items_open",
            "definition_id",
            "entity_id",
            unique=True,
            postgresql_where=text("status IN ('not_started', 'underway', 'snoozed')"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(WorkDefinition.id))
    entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Entity.id))
    assignee: Mapped[str] = mapped_column(Text)
    escalation_user_id: Mapped[str | None] = mapped_column(Text)
    on_behalf_of: Mapped[str | None] = mapped_column(Text)  # the absent person whose item a delegate holds
    status: Mapped[str] = mapped_column(Text, server_default=text("'not_started'"))
    snooze_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snooze_days: Mapped[int | None] = mapped_column(Integer)
    snoozed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority_score: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    skipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the SLA: escalate when passed
    execution_data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    skip_reason: Mapped[str | None] = mapped_column(Text)
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    workflow_started: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_ts: Mapped[datetime] = created_now()
    updated_ts: Mapped[datetime] = created_now()
