"""The people directory (roles beyond the API key's, skills, a cap on open items), absences with their
delegates, the cursor of round-robin distribution, and the log of every assignment change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class Person(Base):
    __tablename__ = "people"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    roles: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    skills: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    max_open: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_ts: Mapped[datetime] = created_now()


class Absence(Base):
    __tablename__ = "people_absences"
    __table_args__ = (Index("idx_people_absences_person", "person", "ends_ts"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    person: Mapped[str] = mapped_column(Text)
    delegate: Mapped[str] = mapped_column(Text)
    starts_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()


class DistributionCursor(Base):
    __tablename__ = "distribution_cursors"

    pool: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class AssignmentChange(Base):
    __tablename__ = "assignment_changes"
    __table_args__ = (Index("idx_assignment_changes_item", "item", "ts"), Index("idx_assignment_changes_ts", "ts"))

    id: Mapped[uuid.UUID] = uuid_pk()
    item: Mapped[str] = mapped_column(Text)  # '<kind>:<id>', as the inbox names it
    from_assignee: Mapped[str | None] = mapped_column(Text)
    to_assignee: Mapped[str] = mapped_column(Text)
    on_behalf_of: Mapped[str | None] = mapped_column(Text)
    how: Mapped[str] = mapped_column(Text)  # round_robin | least_loaded | skill | delegation | reassign | handover
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[datetime] = created_now()
