"""Multi-agent orchestrator sessions (seed: /api/v1/orchestrator/session …)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from temporalio.common import SearchAttributePair

from api.commands import sessions as commands
from api.deps import Approver, EngineDep, GatewayDep, Operator, Reader, SettingsDep
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from api.ratelimits import RateLimits
from core.agents import store
from core.agents.sessions import (
    AgentLogPublic,
    SessionCreate,
    SessionDecisionCreate,
    SessionInput,
    SessionPublic,
)
from core.platform import search_attributes as sa
from core.platform.contracts import Page
from workflows.agents.session import AgentSessionWorkflow, session_workflow_id

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
    if not settings.llm_base_url:
        raise ApiError(
            503,
            "llm_not_configured",
            "agent sessions need an OpenAI-compatible endpoint: set TRELLIS_LLM_BASE_URL (for example "
            "https://api.openai.com/v1 or a local vLLM/Ollama/llama.cpp server's /v1) and TRELLIS_LLM_API_KEY, "
            "then restart the API and the worker",
        )
    limits: RateLimits = request.app.state.rate_limits
    limits.hit(limits.session_starts, principal.name, "agent session starts")
    async with engine.connect() as conn:
        used = await store.tokens_used_since(conn, principal.name, datetime.now(UTC) - timedelta(days=1))
        agents = await store.active_agents(conn)
    if used >= settings.llm_tokens_per_key_per_day:
        raise ApiError(
            429,
            "llm_budget_used",
            f"the sessions started by '{principal.name}' used {used} LLM tokens in the last 24 hours, the budget "
            f"of TRELLIS_LLM_TOKENS_PER_KEY_PER_DAY ({settings.llm_tokens_per_key_per_day}); retry later",
            headers={"Retry-After": "3600"},
        )
    known = {a.agent_name for a in agents}
    unknown = sorted(set(body.agents or []) - known)
    if unknown:
        raise ApiError(
            422,
            "unknown_agent",
            f"no active agent named {', '.join(unknown)}; active agents: {', '.join(sorted(known))}",
        )
    budget = body.token_budget if body.token_budget is not None else settings.session_default_token_budget
    session_id = f"sess-{uuid.uuid4().hex[:16]}"
    workflow_id = session_workflow_id(session_id)
    async with engine.begin() as conn:
        await store.create_session(
            conn,
            body,
            session_id=session_id,
            workflow_id=workflow_id,
            created_by=principal.name,
            token_budget=budget,
        )
    data = SessionInput(
        session_id=session_id,
        goal=body.goal,
        context=body.context,
        agents=agents,
        requested=body.agents,
        approval_required=body.approval_required,
        approval_timeout_seconds=body.approval_timeout_seconds,
        token_budget=budget,
        history_limit=settings.session_history_limit,
    )
    attributes: list[SearchAttributePair[Any]] = [SearchAttributePair(sa.SESSION_STATUS, "initializing")]
    if settings.names_in_temporal:  # a text search attribute and a summary are stored unencrypted
        attributes.append(SearchAttributePair(sa.SESSION_GOAL, body.goal[:500]))
    await gateway.start(
        AgentSessionWorkflow.run,
        data,
        workflow_id=workflow_id,
        search_attributes=attributes,
        summary=f"Agent session: {body.goal[:200]}" if settings.names_in_temporal else f"Agent session {session_id}",
    )
    return await commands.stored(engine, session_id)


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
