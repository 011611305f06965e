"""Tables of multi-agent orchestration (seed XXXVII-XLI): sessions, their state, agents, the agent-call
log and session summaries."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class AgentSession(Base):
    __tablename__ = "orchestrator_session"
    __table_args__ = (Index("idx_orchestrator_session_status", "session_status"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    goal: Mapped[str] = mapped_column(Text)
    orchestrator_prompt: Mapped[str | None] = mapped_column(Text)
    active_agents: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    session_status: Mapped[str] = mapped_column(Text, server_default="initializing")
    final_output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    started_ts: Mapped[datetime] = created_now()
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
    # Who paused the session, why and when ({actor, reason, ts}); NULL while it runs.
    paused: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    forked_from: Mapped[str | None] = mapped_column(String(100))  # the session this one was forked from


class SessionStateData(Base):
    __tablename__ = "orchestrator_state"

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    state_data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_ts: Mapped[datetime] = created_now()


class StoredAgent(Base):
    __tablename__ = "orchestrator_agents"

    id: Mapped[uuid.UUID] = uuid_pk()
    agent_name: Mapped[str] = mapped_column(String(100), unique=True)
    agent_type: Mapped[str] = mapped_column(String(50))
    capabilities: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(300))  # llama.cpp's default id is a 110-character path
    active_flag: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Trellis additions
    description: Mapped[str | None] = mapped_column(Text)
    output_schema: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # The tools the agent may call (issue 25): [{tool, fixed, description}], and its limits per call.
    tools: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    tool_limits: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_ts: Mapped[datetime] = created_now()


class AgentCallLog(Base):
    __tablename__ = "orchestrator_agent_log"
    __table_args__ = (
        Index("idx_orchestrator_agent_log_session", "session_id", "execution_ts"),
        Index("idx_orchestrator_agent_log_ts", "execution_ts"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100))
    agent_name: Mapped[str] = mapped_column(String(100))
    action_type: Mapped[str | None] = mapped_column(String(50))
    input_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # running | completed | invalid_output (the model's reply failed its schema twice) | error (the
    # endpoint refused, or stayed unavailable through the last attempt)
    execution_status: Mapped[str] = mapped_column(Text, server_default="pending")
    execution_ts: Mapped[datetime] = created_now()
    # Trellis additions: one row per agent call, keyed so a retried call finds its own row
    call_key: Mapped[str | None] = mapped_column(Text, unique=True)
    model: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    finished_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SessionSummary(Base):
    __tablename__ = "orchestrator_summary"

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    summary_text: Mapped[str] = mapped_column(Text)
    success_flag: Mapped[bool] = mapped_column(Boolean)
    created_ts: Mapped[datetime] = created_now()
    total_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")
    agent_calls: Mapped[int] = mapped_column(Integer, server_default="0")
