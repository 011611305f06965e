"""Tables of the approval policy: policies and every version of them, the decisions they made, and the
approvals waiting on people."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class StoredPolicy(Base):
    __tablename__ = "policies"
    __table_args__ = (Index("idx_policies_kind", "action_kind", postgresql_where=text("enabled")),)

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    action_kind: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(Text)
    updated_ts: Mapped[datetime] = created_now()


class PolicyVersion(Base):
    """Every save, disable and delete of a policy, with who did it (the audit of policies)."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_policy_versions_name_version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(Text)  # saved | deleted
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actor: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = created_now()


class StoredDecision(Base):
    """One decision a policy made (keyed, so a retried check records it once)."""

    __tablename__ = "policy_decisions"
    __table_args__ = (
        Index("idx_policy_decisions_ts", "ts"),
        Index("idx_policy_decisions_policy", "policy_name", "ts"),
        Index("idx_policy_decisions_subject", "subject", "ts"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    decision_key: Mapped[str] = mapped_column(Text, unique=True)
    ts: Mapped[datetime] = created_now()
    subject_kind: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    action_kind: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    effect: Mapped[str] = mapped_column(Text)
    policy_name: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    approval_id: Mapped[uuid.UUID | None] = mapped_column()
    decided_by: Mapped[list[Any] | None] = mapped_column(JSONB)
    decided_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class StoredApproval(Base):
    """An approval a policy asked for, as its workflow (``approval-<id>``) last wrote it."""

    __tablename__ = "policy_approvals"
    __table_args__ = (Index("idx_policy_approvals_pending", "created_ts", postgresql_where=text("status = 'pending'")),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(Text)
    subject_kind: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    action_kind: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy_name: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    approvers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    required: Mapped[int] = mapped_column(Integer)
    separation_of_duties: Mapped[bool] = mapped_column(Boolean)
    votes: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    escalated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    escalate_to: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    deadline_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalate_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
