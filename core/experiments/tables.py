"""Tables of experiments: A/B variants of a process template or a step workflow, and their audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Double, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class StoredExperiment(Base):
    """One experiment: its variants (name, version, weight, and whether routing still sends to it), the
    minimum sample per variant before anything is called, and how it ended."""

    __tablename__ = "experiments"
    __table_args__ = (
        Index(
            "uq_experiments_running",
            "subject_kind",
            "subject",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
        Index("idx_experiments_subject", "subject_kind", "subject", "created_ts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(Text)  # process | steps
    subject: Mapped[str] = mapped_column(Text)  # a template code or a step workflow's name
    status: Mapped[str] = mapped_column(Text)  # running | ended
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    min_sample: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Double)
    guardrail: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    ended_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(Text)
    promoted: Mapped[str | None] = mapped_column(Text)


class ExperimentEvent(Base):
    """What happened to an experiment: started, a variant stopped by the guardrail, promoted, ended."""

    __tablename__ = "experiment_events"
    __table_args__ = (Index("idx_experiment_events_experiment", "experiment_id", "ts"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    experiment_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(Text)
    variant: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    actor: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = created_now()
