"""Step-workflow tables, as seed 003 names them: ``workflows`` (each version of a definition, one row per
version), ``workflow_executions`` and ``workflow_steps``.

A step record is keyed by (execution, path): the tool activity that performs a database effect writes
its step record in the same transaction, so a retried or replayed step finds it done and never repeats
the effect.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk

EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "compensated")
STEP_STATUSES = ("completed", "failed", "skipped")


class StepWorkflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("name", "version"), Index("idx_workflows_latest", "name", text("version DESC")))

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()


class StepExecution(Base):
    __tablename__ = "workflow_executions"
    __table_args__ = (
        CheckConstraint(f"status IN {EXECUTION_STATUSES}", name="ck_workflow_executions_status"),
        Index("idx_workflow_executions_workflow", "workflow_name", "created_ts"),
        Index("idx_workflow_executions_status", "status", "created_ts"),
        # The runs linked to an execution (re-runs from a step): trigger.execution_id names the source.
        Index("idx_workflow_executions_source", text("(trigger ->> 'execution_id')")),
        Index(
            "idx_workflow_executions_experiment",
            "experiment_id",
            "variant",
            postgresql_where=text("experiment_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workflow_name: Mapped[str] = mapped_column(Text)
    workflow_version: Mapped[int] = mapped_column(Integer)
    temporal_workflow_id: Mapped[str] = mapped_column(Text, unique=True)
    parent_execution_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app.workflow_executions.id"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    step_errors: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    started_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who paused the execution, why and when ({actor, reason, ts}); NULL while it runs.
    paused: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The experiment and variant the execution was routed to (core/experiments); NULL: none.
    experiment_id: Mapped[uuid.UUID | None] = mapped_column()
    variant: Mapped[str | None] = mapped_column(Text)


class StepRecord(Base):
    __tablename__ = "workflow_steps"
    __table_args__ = (
        CheckConstraint(f"status IN {STEP_STATUSES}", name="ck_workflow_steps_status"),
        UniqueConstraint("execution_id", "path"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(StepExecution.id))
    path: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    tool: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    input: Mapped[Any | None] = mapped_column(JSONB)
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    started_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_ts: Mapped[datetime] = created_now()


class EventWait(Base):
    """A step execution waiting on an external event (a ``wait_event`` step): the outbox's delivery
    finds the executions to signal by (source, key). The step removes its row when it stops waiting."""

    __tablename__ = "workflow_event_waits"
    __table_args__ = (Index("idx_workflow_event_waits_source_key", "source", "key"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(StepExecution.id), primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    temporal_workflow_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()


TASK_STATUSES = ("open", "decided", "cancelled")


class StepTask(Base):
    """A human task of a step execution (a ``human_task`` step, or a failed step's ``escalate``): shown in
    the inbox of its assignee (and of its escalation target once escalated) until decided."""

    __tablename__ = "workflow_tasks"
    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES}", name="ck_workflow_tasks_status"),
        Index("idx_workflow_tasks_open", "created_ts", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(StepExecution.id))
    path: Mapped[str] = mapped_column(Text)
    workflow_name: Mapped[str] = mapped_column(Text)
    temporal_workflow_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)  # task | escalation
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    assignee: Mapped[str] = mapped_column(Text)
    on_behalf_of: Mapped[str | None] = mapped_column(Text)  # the absent person whose task a delegate holds
    escalate_to: Mapped[str | None] = mapped_column(Text)
    form: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actions: Mapped[list[Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default=text("'open'"))
    remind_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalate_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    escalated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_ts: Mapped[datetime] = created_now()


class StepSpawn(Base):
    """One execution a ``workflow.run`` step started, under the top-level execution whose tree it belongs
    to: the executions one run may spawn in total (TRELLIS_STEPS_MAX_SPAWNED) are counted here, once each
    (a retried reservation finds its row)."""

    __tablename__ = "workflow_spawns"

    child_execution_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    root_execution_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    created_ts: Mapped[datetime] = created_now()
