"""Data access of multi-agent sessions, for the API and the workflows' activities: agents, sessions,
their working state and summaries, and the LLM call log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.agents.registry import AgentCreate, AgentPublic, AgentSpec
from core.agents.sessions import (
    AgentCallInput,
    AgentCallResult,
    AgentLogPublic,
    SessionCreate,
    SessionPublic,
    SessionRecord,
    ToolRequest,
)
from core.agents.tables import AgentCallLog, AgentSession, SessionStateData, SessionSummary, StoredAgent
from core.platform.contracts import Page
from core.platform.pages import LIKE_ESCAPE, Order, fetch_page, like_escaped

ORCHESTRATOR_PROMPT = "You are an expert project orchestrator."


async def agents_page(
    conn: AsyncConnection, *, active: bool | None, limit: int, offset: int, cursor: str | None = None
) -> Page[AgentPublic]:
    stmt = select(StoredAgent.__table__)
    if active is not None:
        stmt = stmt.where(StoredAgent.active_flag.is_(active))
    return await fetch_page(
        conn,
        stmt,
        order=Order(StoredAgent.agent_name),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=AgentPublic.model_validate,
    )


async def get_agent(conn: AsyncConnection, name: str) -> AgentPublic | None:
    row = (await conn.execute(select(StoredAgent.__table__).where(StoredAgent.agent_name == name))).first()
    return AgentPublic.model_validate(row) if row else None


async def active_agent(conn: AsyncConnection, name: str) -> AgentSpec | None:
    """What a call of the agent carries about it (a step's agent.call, an agent asking another), or None
    when the registry has no active agent of that name."""
    found = await get_agent(conn, name)
    if found is None or not found.active_flag:
        return None
    return AgentSpec.model_validate(
        {**found.model_dump(include=set(AgentSpec.model_fields)), "system_prompt": found.system_prompt or ""}
    )


async def create_agent(conn: AsyncConnection, body: AgentCreate) -> AgentPublic | None:
    """Insert the agent; None when one of that name exists already."""
    if await get_agent(conn, body.agent_name) is not None:
        return None
    await conn.execute(insert(StoredAgent).values(**body.model_dump()))
    return await get_agent(conn, body.agent_name)


async def replace_agent(conn: AsyncConnection, body: AgentCreate) -> AgentPublic | None:
    await conn.execute(
        update(StoredAgent)
        .where(StoredAgent.agent_name == body.agent_name)
        .values(**body.model_dump(), updated_ts=datetime.now(UTC))
    )
    return await get_agent(conn, body.agent_name)


async def deactivate_agent(conn: AsyncConnection, name: str) -> AgentPublic | None:
    await conn.execute(
        update(StoredAgent)
        .where(StoredAgent.agent_name == name)
        .values(active_flag=False, updated_ts=datetime.now(UTC))
    )
    return await get_agent(conn, name)


async def active_agents(conn: AsyncConnection) -> list[AgentSpec]:
    """Snapshots of the active agents, as a session carries them."""
    rows = await conn.execute(select(StoredAgent.__table__).where(StoredAgent.active_flag.is_(True)))
    return [
        AgentSpec(
            agent_name=r.agent_name,
            agent_type=r.agent_type,
            capabilities=r.capabilities,
            system_prompt=r.system_prompt or "",
            model=r.model,
            output_schema=r.output_schema,
            tools=r.tools,
            tool_limits=r.tool_limits,
        )
        for r in rows
    ]


async def tokens_used_since(conn: AsyncConnection, created_by: str, since: datetime) -> int:
    """LLM tokens used by the sessions one principal started since ``since``."""
    used = await conn.execute(
        select(func.coalesce(func.sum(AgentSession.tokens_used), 0)).where(
            AgentSession.created_by == created_by, AgentSession.started_ts >= since
        )
    )
    return int(used.scalar_one())


async def create_session(
    conn: AsyncConnection,
    body: SessionCreate,
    *,
    session_id: str,
    workflow_id: str,
    created_by: str,
    token_budget: int | None,
    forked_from: str | None = None,
) -> None:
    await conn.execute(
        insert(AgentSession).values(
            session_id=session_id,
            goal=body.goal,
            orchestrator_prompt=ORCHESTRATOR_PROMPT,
            session_status="initializing",
            workflow_id=workflow_id,
            context=body.context,
            approval_required=body.approval_required,
            token_budget=token_budget,
            created_by=created_by,
            forked_from=forked_from,
        )
    )


async def session_context(conn: AsyncConnection, session_id: str) -> dict[str, Any]:
    found = await conn.execute(select(AgentSession.context).where(AgentSession.session_id == session_id))
    return dict(found.scalar_one_or_none() or {})


async def get_session(conn: AsyncConnection, session_id: str) -> SessionPublic | None:
    """The stored session with its last recorded working state."""
    stmt = (
        select(AgentSession.__table__, SessionStateData.state_data.label("state"))
        .outerjoin(SessionStateData, SessionStateData.session_id == AgentSession.session_id)
        .where(AgentSession.session_id == session_id)
    )
    row = (await conn.execute(stmt)).first()
    return SessionPublic.model_validate(row) if row else None


async def logs_page(
    conn: AsyncConnection, session_id: str, *, limit: int, offset: int, cursor: str | None = None
) -> Page[AgentLogPublic]:
    stmt = select(AgentCallLog.__table__).where(AgentCallLog.session_id == session_id)
    return await fetch_page(
        conn,
        stmt,
        order=Order(AgentCallLog.execution_ts, AgentCallLog.id),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=AgentLogPublic.model_validate,
    )


async def awaiting_approval(conn: AsyncConnection, *, limit: int = 500) -> list[dict[str, Any]]:
    """Sessions whose final output waits for an approver (for the inbox), oldest first."""
    stmt = (
        select(
            AgentSession.session_id,
            AgentSession.goal,
            AgentSession.started_ts,
            AgentSession.created_by,
        )
        .where(AgentSession.session_status == "awaiting_approval")
        .order_by(AgentSession.started_ts)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await conn.execute(stmt)).all()]


async def sessions_page(
    conn: AsyncConnection, *, status: str | None, search: str | None, limit: int, cursor: str | None = None
) -> Page[SessionPublic]:
    """Sessions newest first; ``search`` matches a session id exactly or words of the goal (any case)."""
    stmt = select(AgentSession.__table__)
    if status is not None:
        stmt = stmt.where(AgentSession.session_status == status)
    if search:
        pattern = f"%{like_escaped(search)}%"
        stmt = stmt.where(
            (AgentSession.session_id == search.strip()) | AgentSession.goal.ilike(pattern, escape=LIKE_ESCAPE)
        )
    return await fetch_page(
        conn,
        stmt,
        order=Order(AgentSession.started_ts, AgentSession.id, descending=True),
        limit=limit,
        offset=0,
        cursor=cursor,
        item=SessionPublic.model_validate,
    )


# --------------------------------------------------------------------------- the workflows' writes


async def record_session(conn: AsyncConnection, data: SessionRecord) -> None:
    """A session's status, working state (orchestrator_state) and, when it ends, its final output,
    completed_ts and summary row. Absolute values: a retried write changes nothing."""
    state = data.state
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "session_status": data.status,
        "active_agents": state.selected,
        "tokens_used": state.tokens,
        "cost_usd": state.cost_usd,
        "status_reason": state.reason,
        "paused": None if data.final or state.paused is None else state.paused.model_dump(mode="json"),
    }
    if data.final:
        values.update(final_output=data.final_output, completed_ts=now)
    await conn.execute(update(AgentSession).where(AgentSession.session_id == data.session_id).values(**values))
    await conn.execute(
        pg_insert(SessionStateData)
        .values(session_id=data.session_id, state_data=state.model_dump(mode="json"), updated_ts=now)
        .on_conflict_do_update(
            index_elements=[SessionStateData.session_id],
            set_={"state_data": state.model_dump(mode="json"), "updated_ts": now},
        )
    )
    if data.final:
        summary = {
            "summary_text": data.summary_text or (state.reason or data.status),
            "success_flag": data.status == "completed",
            "total_tokens": state.tokens,
            "cost_usd": state.cost_usd,
            "agent_calls": state.calls,
        }
        await conn.execute(
            pg_insert(SessionSummary)
            .values(session_id=data.session_id, created_ts=now, **summary)
            .on_conflict_do_update(index_elements=[SessionSummary.session_id], set_=summary)
        )


async def open_call(conn: AsyncConnection, data: AgentCallInput) -> AgentCallResult | None:
    """Open an LLM call's log row, in one round trip: None to go on, or the recorded result when an
    earlier attempt completed this call (it is never made twice)."""
    table = AgentCallLog
    row = (
        await conn.execute(
            pg_insert(table)
            .values(
                session_id=data.session_id,
                agent_name=data.agent.agent_name,
                action_type=data.action_type,
                input_data=data.input,
                execution_status="running",
                call_key=data.call_key,
                execution_ts=datetime.now(UTC),
            )
            .on_conflict_do_update(
                index_elements=[table.call_key],
                set_={"execution_status": case((table.execution_status == "completed", "completed"), else_="running")},
            )
            .returning(
                table.execution_status,
                table.output_data,
                table.prompt_tokens,
                table.completion_tokens,
                table.cost_usd,
                table.latency_ms,
                table.model,
            )
        )
    ).one()
    if row.execution_status != "completed":
        return None
    recorded = dict(row.output_data or {})
    tool_calls = recorded.pop(TOOL_CALLS_KEY, None)
    return AgentCallResult(
        output=recorded,
        tool_calls=[ToolRequest.model_validate(c) for c in tool_calls or []],
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=float(row.cost_usd),
        latency_ms=row.latency_ms or 0,
        model=row.model or "",
    )


async def record_call_error(conn: AsyncConnection, call_key: str, error: str, *, last: bool) -> bool:
    """Keep an attempt's error on a running call; with ``last`` the call ends ``error``. True when this
    write ended the call (so it is counted once)."""
    recorded = await conn.execute(
        update(AgentCallLog)
        .where(AgentCallLog.call_key == call_key, AgentCallLog.execution_status == "running")
        .values(
            execution_status="error" if last else "running",
            error=error[:2000],
            finished_ts=datetime.now(UTC) if last else None,
        )
    )
    return last and recorded.rowcount == 1


async def finish_call(
    conn: AsyncConnection, call_key: str, status: str, result: AgentCallResult, error: str | None
) -> None:
    await conn.execute(
        update(AgentCallLog)
        .where(AgentCallLog.call_key == call_key)
        .values(
            execution_status=status,
            output_data=_kept_output(result) if status in ("completed", "invalid_output") else None,
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            error=error,
            finished_ts=datetime.now(UTC),
        )
    )


def _kept_output(result: AgentCallResult) -> dict[str, Any]:
    asked = {TOOL_CALLS_KEY: [c.model_dump() for c in result.tool_calls]} if result.tool_calls else {}
    return {**result.output, **asked}


# A model turn that asked for tools keeps them in its row's output under this key (never an output field:
# an agent's output schema is an object of its own fields).
TOOL_CALLS_KEY = "_tool_calls"


class ToolLedger:
    """Where an agent's tool call is recorded (core/effects/ledger.py): its own row of the agent log,
    keyed by (agent call, turn, position), written ``completed`` with the tool's output."""

    def __init__(
        self, *, session_id: str, agent: str, key: str, tool: str, arguments: dict[str, Any], started: datetime
    ) -> None:
        self._started = started
        self._session_id = session_id
        self._agent = agent
        self._key = key
        self._tool = tool
        self._arguments = arguments

    @property
    def lock_key(self) -> str:
        return self._key

    async def recorded(self, conn: AsyncConnection) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(AgentCallLog.output_data, AgentCallLog.execution_status).where(
                    AgentCallLog.call_key == self._key
                )
            )
        ).first()
        return None if row is None or row.execution_status != "completed" else dict(row.output_data or {})

    async def record(self, conn: AsyncConnection, output: dict[str, Any]) -> None:
        await record_tool_call(
            conn,
            session_id=self._session_id,
            agent=self._agent,
            key=self._key,
            tool=self._tool,
            arguments=self._arguments,
            status="completed",
            output=output,
            latency_ms=int((datetime.now(UTC) - self._started).total_seconds() * 1000),
            started=self._started,
        )


async def record_tool_call(
    conn: AsyncConnection,
    *,
    session_id: str,
    agent: str,
    key: str,
    tool: str,
    arguments: dict[str, Any],
    status: str,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    latency_ms: int | None = None,
    started: datetime | None = None,
) -> None:
    """A tool call's row in the agent log (action ``tool_call``): its arguments, result or error, status
    (completed, invalid, denied, rejected, failed) and duration. A completed row is never changed."""
    now = datetime.now(UTC)
    values = {
        "execution_status": status,
        "output_data": output,
        "error": error[:2000] if error else None,
        "latency_ms": latency_ms,
        "finished_ts": now,
    }
    await conn.execute(
        pg_insert(AgentCallLog)
        .values(
            session_id=session_id,
            agent_name=agent,
            action_type="tool_call",
            input_data={"tool": tool, "arguments": arguments},
            call_key=key,
            execution_ts=started or now,
            **values,
        )
        .on_conflict_do_update(
            index_elements=[AgentCallLog.call_key],
            set_=values,
            where=AgentCallLog.execution_status != "completed",
        )
    )
