"""Analytics of agent calls (seed 002's agent use, agents per run, cost): per agent and model, per day
and per session, over orchestrator_agent_log. A call is one row keyed by its call key, whatever the
number of attempts, so a retried call counts once. The cost of a call is stored when it completes,
from the price table in settings at that time (TRELLIS_LLM_PRICES)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.platform.database import ANALYTICS_WORK_MEM, read_at_once
from core.platform.figures import rounded

_CHOSEN = """
    SELECT * FROM app.orchestrator_agent_log
    WHERE (CAST(:from_ts AS timestamptz) IS NULL OR execution_ts >= :from_ts)
      AND (CAST(:to_ts AS timestamptz) IS NULL OR execution_ts < :to_ts)
      AND (CAST(:session_id AS text) IS NULL OR session_id = :session_id)
      AND (CAST(:agent AS text) IS NULL OR agent_name = :agent)
"""

_FIGURES = """
    count(*) AS calls,
    count(*) FILTER (WHERE execution_status = 'completed') AS completed,
    count(*) FILTER (WHERE execution_status = 'invalid_output') AS invalid_outputs,
    count(*) FILTER (WHERE execution_status = 'error') AS errors,
    coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
    coalesce(sum(completion_tokens), 0) AS completion_tokens,
    coalesce(sum(cost_usd), 0) AS cost_usd
"""


class CallFigures(BaseModel):
    calls: int = Field(description="Agent calls, each once however many attempts it took")
    completed: int
    invalid_outputs: int = Field(description="Replies that failed the agent's schema twice")
    errors: int = Field(description="Calls the endpoint refused, or that failed their last attempt")
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class AgentModelFigures(CallFigures):
    agent_name: str
    model: str | None
    priced: bool = Field(description="Whether the price table lists the model (an unpriced model costs 0)")
    latency_p50_ms: float | None = Field(description="Completed calls, from the first request to the valid reply")
    latency_p95_ms: float | None


class DayFigures(CallFigures):
    day: datetime


class SessionFigures(CallFigures):
    session_id: str
    agents: int = Field(description="Distinct agents the session called")


class AgentsAnalytics(BaseModel):
    from_ts: datetime | None
    to_ts: datetime | None
    totals: CallFigures
    by_agent_model: list[AgentModelFigures]
    by_day: list[DayFigures]
    sessions: list[SessionFigures] = Field(description="The costliest sessions first, at most `top`")
    session_count: int


def _figures(row: Any) -> dict[str, Any]:
    return {
        "calls": row.calls,
        "completed": row.completed,
        "invalid_outputs": row.invalid_outputs,
        "errors": row.errors,
        "prompt_tokens": int(row.prompt_tokens),
        "completion_tokens": int(row.completion_tokens),
        "cost_usd": round(float(row.cost_usd), 6),
    }


async def agents_analytics(
    engine: AsyncEngine,
    *,
    priced_models: set[str],
    from_ts: datetime | None,
    to_ts: datetime | None,
    session_id: str | None = None,
    agent: str | None = None,
    top: int = 50,
) -> AgentsAnalytics:
    """The figures; the four parts are independent reads, made at once (``read_at_once``)."""
    params: dict[str, Any] = {
        "from_ts": from_ts,
        "to_ts": to_ts,
        "session_id": session_id,
        "agent": agent,
        "top": top,
    }

    async def rows(conn: AsyncConnection, sql: str) -> list[Any]:
        return list((await conn.execute(text(sql), params)).all())

    totals_rows, by_agent, by_day, sessions = await read_at_once(
        engine,
        lambda conn: rows(conn, f"WITH c AS ({_CHOSEN}) SELECT {_FIGURES} FROM c"),
        lambda conn: rows(
            conn,
            f"""
            WITH c AS ({_CHOSEN})
            SELECT agent_name COLLATE "C" AS agent_name, model COLLATE "C" AS model, {_FIGURES},
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
                       FILTER (WHERE execution_status = 'completed') AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                       FILTER (WHERE execution_status = 'completed') AS p95
            FROM c GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST
            """,
        ),
        lambda conn: rows(
            conn,
            f"WITH c AS ({_CHOSEN}) SELECT date_trunc('day', execution_ts) AS day, {_FIGURES} "
            "FROM c GROUP BY day ORDER BY day",
        ),
        lambda conn: rows(
            conn,
            f"""
            WITH c AS ({_CHOSEN})
            SELECT session_id COLLATE "C" AS session_id, count(DISTINCT agent_name COLLATE "C") AS agents,
                   {_FIGURES}, count(*) OVER () AS total
            FROM c GROUP BY 1 ORDER BY cost_usd DESC, 1 LIMIT :top
            """,
        ),
        work_mem=ANALYTICS_WORK_MEM,
    )
    totals = totals_rows[0]
    return AgentsAnalytics(
        from_ts=from_ts,
        to_ts=to_ts,
        totals=CallFigures(**_figures(totals)),
        by_agent_model=[
            AgentModelFigures(
                agent_name=r.agent_name,
                model=r.model,
                priced=r.model in priced_models,
                latency_p50_ms=rounded(r.p50, 1),
                latency_p95_ms=rounded(r.p95, 1),
                **_figures(r),
            )
            for r in by_agent
        ],
        by_day=[DayFigures(day=r.day, **_figures(r)) for r in by_day],
        sessions=[SessionFigures(session_id=r.session_id, agents=r.agents, **_figures(r)) for r in sessions],
        session_count=sessions[0].total if sessions else 0,
    )
