"""Tables of automation (seed XXIII): rules, rule executions, the action log and webhook dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class WorkflowAutomation(Base):
    __tablename__ = "d_workflow_automation"
    __table_args__ = (Index("idx_workflow_auto_trigger", "trigger_entity_type", "trigger_action_type"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_name: Mapped[str] = mapped_column(Text)
    trigger_entity_type: Mapped[str] = mapped_column(Text)
    trigger_action_type: Mapped[str] = mapped_column(Text)
    trigger_scope: Mapped[str] = mapped_column(Text, server_default="all")
    trigger_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # scope 'specific'
    trigger_conditions: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    action_entity_type: Mapped[str] = mapped_column(Text)
    actions: Mapped[list[Any]] = mapped_column()
    execution_order: Mapped[int] = mapped_column(Integer, server_default="0")
    max_executions: Mapped[int] = mapped_column(Integer, server_default="-1")
    execution_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_executed_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_ts: Mapped[datetime] = created_now()
    updated_ts: Mapped[datetime] = created_now()
    # Trellis additions
    description: Mapped[str | None] = mapped_column(Text)
    schedule_cron: Mapped[str | None] = mapped_column(Text)  # trigger_action_type 'scheduled'
    webhook_secret: Mapped[str] = mapped_column(Text)  # Standard Webhooks signing key, per rule
    created_by: Mapped[str | None] = mapped_column(Text)


class RuleExecution(Base):
    """One rule considered for one event: claimed (counted against max_executions) exactly once."""

    __tablename__ = "f_rule_execution"
    __table_args__ = (
        Index("idx_rule_execution_rule", "rule_id", "started_ts"),
        Index("idx_rule_execution_event", "event_id"),
    )

    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # running | completed | failed | skipped
    reason: Mapped[str | None] = mapped_column(Text)
    execution_number: Mapped[int | None] = mapped_column(Integer)
    started_ts: Mapped[datetime] = created_now()
    finished_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ActionLog(Base):
    """An action's outcome, keyed by (rule, event, action index): a retried action sees it is done."""

    __tablename__ = "f_action_log"

    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    action_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    finished_ts: Mapped[datetime] = created_now()


class WebhookDeadLetter(Base):
    """A webhook that failed its last attempt; redeliverable through the API with the same webhook-id."""

    __tablename__ = "f_webhook_dead_letter"

    id: Mapped[uuid.UUID] = uuid_pk()
    webhook_id: Mapped[str] = mapped_column(Text, unique=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    action_index: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    body: Mapped[str] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_ts: Mapped[datetime] = created_now()
    redelivered_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redelivery_status: Mapped[int | None] = mapped_column(Integer)
