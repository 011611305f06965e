"""Tables (SQLAlchemy 2.0 typed models) and engine factory.

Tables live in the ``app`` schema, as in the seed. Column names follow the seed's DDL; the columns
Trellis adds (versions, idempotency keys, actors) are noted where they appear.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "app"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# --------------------------------------------------------------------------- automation (seed XXIII)


class WorkflowAutomation(Base):
    __tablename__ = "d_workflow_automation"
    __table_args__ = (Index("idx_workflow_auto_trigger", "trigger_entity_type", "trigger_action_type"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
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
    created_ts: Mapped[datetime] = _now()
    updated_ts: Mapped[datetime] = _now()
    # Trellis additions
    description: Mapped[str | None] = mapped_column(Text)
    schedule_cron: Mapped[str | None] = mapped_column(Text)  # trigger_action_type 'scheduled'
    webhook_secret: Mapped[str] = mapped_column(Text)  # Standard Webhooks signing key, per rule
    created_by: Mapped[str | None] = mapped_column(Text)


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
    actor: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = _now()
    dispatched_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RuleExecution(Base):
    """One rule considered for one event: claimed (counted against max_executions) exactly once."""

    __tablename__ = "f_rule_execution"
    __table_args__ = (Index("idx_rule_execution_rule", "rule_id", "started_ts"),)

    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # running | completed | failed | skipped
    reason: Mapped[str | None] = mapped_column(Text)
    execution_number: Mapped[int | None] = mapped_column(Integer)
    started_ts: Mapped[datetime] = _now()
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
    finished_ts: Mapped[datetime] = _now()


class WebhookDeadLetter(Base):
    """A webhook that failed its last attempt; redeliverable through the API with the same webhook-id."""

    __tablename__ = "f_webhook_dead_letter"

    id: Mapped[uuid.UUID] = _uuid_pk()
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
    created_ts: Mapped[datetime] = _now()
    redelivered_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redelivery_status: Mapped[int | None] = mapped_column(Integer)


# --------------------------------------------------------------------------- industry DAGs (XXIV, XXV, XXXII)


class GraphHead(Base):
    """A template version. Trellis adds ``version``: (code, version) is unique, and instances point at
    the row of the version they started on."""

    __tablename__ = "d_industry_workflow_graph_head"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_graph_head_code_version"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(50), index=True)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    name: Mapped[str] = mapped_column(Text)
    industry_sector: Mapped[str] = mapped_column(Text)
    workflow_graph: Mapped[dict[str, Any]] = mapped_column()
    active_workflow_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    default_workflow_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    avg_duration_days: Mapped[int | None] = mapped_column(Integer)
    success_rate_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = _now()


class GraphData(Base):
    """An instance's projection, written only by the process workflow's activities."""

    __tablename__ = "d_industry_workflow_graph_data"
    __table_args__ = (
        Index("idx_workflow_data_head", "workflow_head_id"),
        Index("idx_workflow_data_code_status", "template_code", "workflow_status"),
        Index("idx_workflow_data_state", "current_state_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_head_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(GraphHead.id))
    current_state_id: Mapped[int | None] = mapped_column(Integer)
    state_history: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    # A JSON array of {state_id, entity, id, action, status}; the seed's default '{}' is an empty map.
    created_entities: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    workflow_status: Mapped[str] = mapped_column(Text, server_default="active")
    started_ts: Mapped[datetime] = _now()
    completed_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Trellis additions
    workflow_id: Mapped[str] = mapped_column(Text, unique=True)
    template_code: Mapped[str] = mapped_column(String(50))
    template_version: Mapped[int] = mapped_column(Integer)
    current_state_name: Mapped[str | None] = mapped_column(Text)
    root_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    success_flag: Mapped[bool | None] = mapped_column(Boolean)
    pending_approval: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_seq: Mapped[int] = mapped_column(Integer, server_default="0")  # guards against stale writes
    updated_ts: Mapped[datetime] = _now()


class WorkflowEvent(Base):
    """Audit trail. Ids are derived from (instance, sequence, kind) so a retry inserts nothing new."""

    __tablename__ = "f_industry_workflow_events"
    __table_args__ = (
        Index("idx_workflow_events_data", "workflow_data_id"),
        Index("idx_workflow_events_type_ts", "event_type", "event_ts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_data_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(Text)
    from_state_id: Mapped[int | None] = mapped_column(Integer)
    to_state_id: Mapped[int | None] = mapped_column(Integer)
    trigger_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    event_ts: Mapped[datetime] = _now()
    # Trellis additions
    seq: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


# --------------------------------------------------------------------------- business entities


class Entity(Base):
    """Generic store for business entities of any type (customer, quote, order, task, …)."""

    __tablename__ = "d_entity"
    __table_args__ = (
        Index("idx_entity_type_status", "entity_type", "status"),
        Index("idx_entity_type_created", "entity_type", "created_ts"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    entity_type: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_ts: Mapped[datetime] = _now()
    updated_ts: Mapped[datetime] = _now()
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
    created_ts: Mapped[datetime] = _now()


class Notification(Base):
    """A notification to one recipient; ``dedupe_key`` makes a retried send a no-op."""

    __tablename__ = "d_notification"
    __table_args__ = (Index("idx_notification_recipient", "recipient", "read_ts"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    recipient: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_ts: Mapped[datetime] = _now()
    read_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --------------------------------------------------------------------------- orchestrator (XXXVII-XLI)


class OrchestratorSession(Base):
    __tablename__ = "orchestrator_session"
    __table_args__ = (Index("idx_orchestrator_session_status", "session_status"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    goal: Mapped[str] = mapped_column(Text)
    orchestrator_prompt: Mapped[str | None] = mapped_column(Text)
    active_agents: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    session_status: Mapped[str] = mapped_column(Text, server_default="initializing")
    final_output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    started_ts: Mapped[datetime] = _now()
    completed_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Trellis additions
    workflow_id: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    approval_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    token_budget: Mapped[int | None] = mapped_column(Integer)
    tokens_used: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)


class OrchestratorState(Base):
    __tablename__ = "orchestrator_state"

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    state_data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_ts: Mapped[datetime] = _now()


class OrchestratorAgent(Base):
    __tablename__ = "orchestrator_agents"

    id: Mapped[uuid.UUID] = _uuid_pk()
    agent_name: Mapped[str] = mapped_column(String(100), unique=True)
    agent_type: Mapped[str] = mapped_column(String(50))
    capabilities: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(50))
    active_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Trellis additions
    description: Mapped[str | None] = mapped_column(Text)
    output_schema: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_ts: Mapped[datetime] = _now()


class OrchestratorAgentLog(Base):
    __tablename__ = "orchestrator_agent_log"
    __table_args__ = (Index("idx_orchestrator_agent_log_session", "session_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100))
    agent_name: Mapped[str] = mapped_column(String(100))
    action_type: Mapped[str | None] = mapped_column(String(50))
    input_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    execution_status: Mapped[str] = mapped_column(Text, server_default="pending")
    execution_ts: Mapped[datetime] = _now()
    # Trellis additions: one row per agent call, keyed so a retried call finds its own row
    call_key: Mapped[str | None] = mapped_column(Text, unique=True)
    model: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    finished_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrchestratorSummary(Base):
    __tablename__ = "orchestrator_summary"

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    summary_text: Mapped[str] = mapped_column(Text)
    success_flag: Mapped[bool] = mapped_column(Boolean)
    created_ts: Mapped[datetime] = _now()
    total_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    agent_calls: Mapped[int] = mapped_column(Integer, server_default="0")


def is_data_error(exc: BaseException) -> bool:
    """SQLSTATE class 22 (data exception: NUL byte, out of range, bad encoding …): the data is at
    fault, so retrying cannot help and the caller must fix it."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def make_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine; callers own it and dispose of it on shutdown."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
