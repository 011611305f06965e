"""Data access of multi-agent orchestration for the API: agents, sessions and their call logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.agents.registry import AgentCreate, AgentPublic, AgentSpec
from core.agents.sessions import AgentLogPublic, SessionCreate, SessionPublic
from core.agents.tables import AgentCallLog, AgentSession, SessionStateData, StoredAgent
from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page

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
        )
    )


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
