"""Multi-agent orchestrator sessions (seed: /api/v1/orchestrator/session …)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.commands import sessions as commands
from api.deps import Approver, EngineDep, GatewayDep, Operator, Reader, SettingsDep
from api.pagination import Cursor, Limit, Offset
from core.agents import store
from core.agents.sessions import (
    AgentLogPublic,
    SessionCreate,
    SessionDecisionCreate,
    SessionFork,
    SessionPublic,
)
from core.platform.contracts import Page
from core.platform.pauses import PauseCreate, ResumeCreate

router = APIRouter(prefix="/api/v1/orchestrator/session", tags=["orchestrator"])


@router.post("", response_model=SessionPublic, status_code=201)
async def start_session(
    body: SessionCreate,
    request: Request,
    engine: EngineDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    principal: Operator,
) -> SessionPublic:
    return await commands.start(body, principal, engine, gateway, settings, request.app.state.rate_limits)


@router.post("/{session_id}/fork", response_model=SessionPublic, status_code=201)
async def fork_session(
    session_id: str,
    body: SessionFork,
    request: Request,
    engine: EngineDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    principal: Operator,
) -> SessionPublic:
    """A new session that continues this one from a stage: the agents of the earlier stages keep their
    recorded outputs (no LLM call is made again), the stage and those after it run with the edited goal
    or context. The new session names its source in ``forked_from``."""
    return await commands.fork(session_id, body, principal, engine, gateway, settings, request.app.state.rate_limits)


@router.post("/{session_id}/pause", response_model=SessionPublic)
async def pause_session(
    session_id: str, body: PauseCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> SessionPublic:
    """Pause a running session: the agent call under way finishes and no new one starts until it is
    resumed; its approval refuses decisions meanwhile (409 ``paused``)."""
    return await commands.pause(session_id, body, principal, engine, gateway)


@router.post("/{session_id}/resume", response_model=SessionPublic)
async def resume_session(
    session_id: str, body: ResumeCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> SessionPublic:
    return await commands.resume(session_id, body, principal, engine, gateway)


@router.get("/{session_id}", response_model=SessionPublic)
async def get_session(session_id: str, engine: EngineDep, gateway: GatewayDep, principal: Reader) -> SessionPublic:
    """The stored session; while it runs, ``state`` comes live from the workflow."""
    return await commands.get(session_id, principal, engine, gateway)


@router.get("/{session_id}/logs", response_model=Page[AgentLogPublic])
async def session_logs(
    session_id: str, engine: EngineDep, _: Reader, limit: Limit = 100, offset: Offset = 0, cursor: Cursor = None
) -> Page[AgentLogPublic]:
    await commands.stored(engine, session_id)
    async with engine.connect() as conn:
        return await store.logs_page(conn, session_id, limit=limit, offset=offset, cursor=cursor)


@router.post("/{session_id}/approval", response_model=SessionPublic)
async def decide_session(
    session_id: str, body: SessionDecisionCreate, engine: EngineDep, gateway: GatewayDep, principal: Approver
) -> SessionPublic:
    return await commands.decide(session_id, body, principal, engine, gateway)


@router.post("/{session_id}/cancel", response_model=SessionPublic)
async def cancel_session(session_id: str, engine: EngineDep, gateway: GatewayDep, principal: Operator) -> SessionPublic:
    """Cancel a running session: its starter's or an admin's to do."""
    return await commands.cancel(session_id, principal, engine, gateway)
