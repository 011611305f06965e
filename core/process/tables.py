"""Tables of industry process DAGs (seed XXIV, XXV, XXXII): template versions, instance projections,
and the audit trail of instance events."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class GraphHead(Base):
    """A template version. Trellis adds ``version``: (code, version) is unique, and instances point at
    the row of the version they started on."""

    __tablename__ = "d_industry_workflow_graph_head"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_graph_head_code_version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(50), index=True)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    name: Mapped[str] = mapped_column(Text)
    industry_sector: Mapped[str] = mapped_column(Text)
    workflow_graph: Mapped[dict[str, Any]] = mapped_column()
    active_workflow_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    default_workflow_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The author's estimate until an instance finishes; from then on the measured mean (Trellis makes
    # it numeric: an integer rounds a half-day process to 0).
    avg_duration_days: Mapped[Decimal | None] = mapped_column(Numeric(10, 3))
    success_rate_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    # Trellis additions: the counters the two figures above are computed from, moved by the
    # transaction that records an instance's finish (core/process/templates.count_finish).
    finished_count: Mapped[int] = mapped_column(Integer, server_default="0")
    succeeded_count: Mapped[int] = mapped_column(Integer, server_default="0")
    duration_seconds_total: Mapped[float] = mapped_column(Double, server_default="0")


class GraphData(Base):
    """An instance's projection, written only by the process workflow's activities."""

    __tablename__ = "d_industry_workflow_graph_data"
    __table_args__ = (
        Index("idx_workflow_data_head", "workflow_head_id"),
        Index("idx_workflow_data_code_status", "template_code", "workflow_status"),
        # Lists (newest first, keyset) and analytics over a template's instances started in a window.
        Index("idx_workflow_data_started", text("started_ts DESC"), text("id DESC")),
        Index("idx_workflow_data_code_started", "template_code", "started_ts"),
        # A template's analytics (issue 27): its totals, days and duration histogram read the chosen
        # instances from this index alone, not from the wide rows with their histories.
        Index(
            "idx_workflow_data_code_figures",
            "template_code",
            "started_ts",
            postgresql_include=[
                "id",
                "template_version",
                "workflow_status",
                "success_flag",
                "completed_ts",
                "current_state_id",
            ],
        ),
        Index("idx_workflow_data_state", "current_state_id"),
        # The instances of an experiment, by variant (issue 26).
        Index(
            "idx_workflow_data_experiment",
            "experiment_id",
            "variant",
            postgresql_where=text("experiment_id IS NOT NULL"),
        ),
        # Paused instances (few): the console's home counts them, its list filters them.
        Index("idx_workflow_data_paused", "started_ts", postgresql_where=text("paused IS NOT NULL")),
        # The inbox (issue 27): open deadline alerts of running instances, and approval gates waiting for
        # a decision, oldest first.
        Index(
            "idx_workflow_data_deadline_alert",
            "deadline_alert_ts",
            postgresql_where=text("deadline_alert_ts IS NOT NULL AND workflow_status = 'active'"),
        ),
        Index(
            "idx_workflow_data_pending_approval",
            text("(pending_approval ->> 'requested_ts')"),
            postgresql_where=text("workflow_status = 'active' AND (pending_approval ->> 'status') = 'pending'"),
        ),
        # Which running instance manages an entity: created_entities @> '[{"id": …}]'.
        Index(
            "idx_workflow_data_created_entities",
            "created_entities",
            postgresql_using="gin",
            postgresql_ops={"created_entities": "jsonb_path_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_head_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(GraphHead.id))
    current_state_id: Mapped[int | None] = mapped_column(Integer)
    state_history: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    # A JSON array of {state_id, entity, id, action, status}; the seed's default '{}' is an empty map.
    created_entities: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    workflow_status: Mapped[str] = mapped_column(Text, server_default="active")
    started_ts: Mapped[datetime] = created_now()
    completed_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Trellis additions
    workflow_id: Mapped[str] = mapped_column(Text, unique=True)
    template_code: Mapped[str] = mapped_column(String(50))
    template_version: Mapped[int] = mapped_column(Integer)
    current_state_name: Mapped[str | None] = mapped_column(Text)
    root_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    success_flag: Mapped[bool | None] = mapped_column(Boolean)
    pending_approval: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # When the deadline alert of the state it is in was raised, while not acknowledged (the inbox's
    # deadline kind reads these, issue 27); cleared by the next state entry or the acknowledgement.
    deadline_alert_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seq: Mapped[int] = mapped_column(Integer, server_default="0")  # guards against stale writes
    updated_ts: Mapped[datetime] = created_now()
    # Who paused the instance, why and when ({actor, reason, ts}); NULL while it runs.
    paused: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The experiment and variant the instance was routed to at its start (core/experiments); NULL: none.
    experiment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    variant: Mapped[str | None] = mapped_column(Text)


class InstanceForecast(Base):
    """The latest forecast of a running instance, kept by the forecast watch (core/process/forecast_data):
    what the instance list sorts by risk, and what the early warning compares with its threshold."""

    __tablename__ = "instance_forecasts"
    __table_args__ = (Index("idx_instance_forecasts_risk", text("risk DESC"), text("instance_id DESC")),)

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    template_code: Mapped[str] = mapped_column(Text)
    state_id: Mapped[int] = mapped_column(Integer)
    success_probability: Mapped[float] = mapped_column(Double)
    remaining_p50_seconds: Mapped[float] = mapped_column(Double)
    remaining_p90_seconds: Mapped[float] = mapped_column(Double)
    on_time_probability: Mapped[float | None] = mapped_column(Double)
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    risk: Mapped[float] = mapped_column(Double)
    uncertain: Mapped[bool] = mapped_column(Boolean)
    computed_ts: Mapped[datetime] = created_now()


class ForecastWarning(Base):
    """An early warning: the instance's chance to meet its deadline fell below the template's threshold
    before the deadline passed. One per instance; the owner role acknowledges it in the inbox."""

    __tablename__ = "forecast_warnings"
    __table_args__ = (
        Index("idx_forecast_warnings_open", "warned_ts", postgresql_where=text("acknowledged_ts IS NULL")),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    template_code: Mapped[str] = mapped_column(Text)
    owner_role: Mapped[str] = mapped_column(Text)
    on_time_probability: Mapped[float] = mapped_column(Double)
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    warned_ts: Mapped[datetime] = created_now()
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledged_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkflowEvent(Base):
    """Audit trail. Ids are derived from (instance, sequence, kind) so a retry inserts nothing new."""

    __tablename__ = "f_industry_workflow_events"
    __table_args__ = (
        Index("idx_workflow_events_data_seq", "workflow_data_id", "seq"),
        Index("idx_workflow_events_type_ts", "event_type", "event_ts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_data_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(Text)
    from_state_id: Mapped[int | None] = mapped_column(Integer)
    to_state_id: Mapped[int | None] = mapped_column(Integer)
    trigger_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    event_ts: Mapped[datetime] = created_now()
    # Trellis additions
    seq: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class StateVisit(Base):
    """A visit of a state that has ended, one row per state entry that ended it (issue 27): the same visits
    the instance's state history (and its state_transition events) describe, kept as rows so a template's
    analytics aggregate them by index instead of unnesting every instance's history. Written by the state
    entry's own statement (core/process/store.py), once per step: its key is the ending entry's seq."""

    __tablename__ = "f_state_visit"
    __table_args__ = (Index("idx_state_visit_code_state", "template_code", "state_id"),)

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # the entry that ended the visit
    template_code: Mapped[str] = mapped_column(Text)
    state_id: Mapped[int] = mapped_column(Integer)
    entered_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    left_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(Double)


class Migration(Base):
    """A migration of running instances from one template version to another (core/process/migration.py):
    the plan as given, who asked, and how far the batches have got."""

    __tablename__ = "process_migrations"
    __table_args__ = (Index("idx_process_migrations_code", "template_code", "created_ts"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    template_code: Mapped[str] = mapped_column(String(50))
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    plan: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(Text, server_default="running")
    created_by: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    completed_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MigrationItem(Base):
    """One instance of a migration: pending until its batch sends it the update, then migrated or refused."""

    __tablename__ = "process_migration_items"
    __table_args__ = (Index("idx_process_migration_items_pending", "migration_id", "outcome"),)

    migration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Migration.id), primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    from_state_id: Mapped[int] = mapped_column(Integer)
    to_state_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text, server_default="pending")
    message: Mapped[str | None] = mapped_column(Text)
    updated_ts: Mapped[datetime] = created_now()
