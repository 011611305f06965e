"""Agent session commands: read one, decide its approval, cancel it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal, ensure_starter
from api.errors import ApiError
from api.gateway import Gateway, WorkflowNotFound
from core.agents import store
from core.agents.sessions import AgentLogPublic, SessionDecision, SessionDecisionCreate, SessionPublic
from core.platform.contracts import Page
from workflows.agents.session import AgentSessionWorkflow, session_workflow_id


async def stored(engine: AsyncEngine, session_id: str) -> SessionPublic:
    async with engine.connect() as conn:
        found = await store.get_session(conn, session_id)
    if found is None:
        raise ApiError(404, "not_found", f"no session {session_id}")
    return found


async def get(session_id: str, principal: Principal, engine: AsyncEngine, gateway: Gateway) -> SessionPublic:
    """The stored session; while it runs, ``state`` comes live from the workflow."""
    allow(principal, *READERS)
    session = await stored(engine, session_id)
    if session.completed_ts is None and session.workflow_id:
        live = await gateway.query(session.workflow_id, AgentSessionWorkflow.progress)
        if live is not None:
            session.state = live.model_dump(mode="json")
    return session


async def decide(
    session_id: str, body: SessionDecisionCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> SessionPublic:
    """Approve or reject a session awaiting approval: approvers and admins."""
    allow(principal, "approver", doing="decide agent sessions")
    session = await stored(engine, session_id)
    if session.session_status != "awaiting_approval":
        raise ApiError(
            409,
            "not_awaiting_approval",
            f"session is {session.session_status}; only a session awaiting approval takes a decision",
        )
    try:
        await gateway.update(
            session.workflow_id or session_workflow_id(session_id),
            AgentSessionWorkflow.decide,
            SessionDecision(decision=body.decision, comment=body.comment, actor=principal.name),
        )
    except WorkflowNotFound as exc:
        raise ApiError(409, "session_finished", f"session {session_id} has finished; nothing to decide") from exc
    return await stored(engine, session_id)


async def cancel(session_id: str, principal: Principal, engine: AsyncEngine, gateway: Gateway) -> SessionPublic:
    """Cancel a running session: its starter's or an admin's to do."""
    allow(principal, "operator", doing="cancel agent sessions")
    session = await stored(engine, session_id)
    ensure_starter(principal, session.created_by, f"session {session_id}", "cancel")
    if session.completed_ts is not None:
        raise ApiError(409, "session_finished", f"session is {session.session_status}; nothing to cancel")
    try:
        await gateway.cancel(session.workflow_id or session_workflow_id(session_id))
    except WorkflowNotFound as exc:
        raise ApiError(409, "session_finished", f"session {session_id} has finished; nothing to cancel") from exc
    return session


async def listing(
    principal: Principal,
    engine: AsyncEngine,
    *,
    status: str | None = None,
    search: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[SessionPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.sessions_page(conn, status=status, search=search, limit=limit, cursor=cursor)


async def calls(
    session_id: str, principal: Principal, engine: AsyncEngine, *, limit: int = 200, cursor: str | None = None
) -> Page[AgentLogPublic]:
    """A session's agent calls in the order they were made (404 for no such session)."""
    allow(principal, *READERS)
    await stored(engine, session_id)
    async with engine.connect() as conn:
        return await store.logs_page(conn, session_id, limit=limit, offset=0, cursor=cursor)
