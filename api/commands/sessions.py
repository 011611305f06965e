"""Agent session commands: start one (or fork one from a stage), read it, decide its approval,
pause, resume or cancel it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.common import SearchAttributePair

from api.commands.rights import READERS, allow
from api.deps import Principal, ensure_starter
from api.errors import ApiError
from api.gateway import Gateway, WorkflowNotFound
from api.ratelimits import RateLimits
from core.agents import store
from core.agents.registry import stages
from core.agents.sessions import (
    AgentLogPublic,
    SessionCreate,
    SessionDecision,
    SessionDecisionCreate,
    SessionFork,
    SessionInput,
    SessionPublic,
    SessionState,
)
from core.platform import search_attributes as sa
from core.platform.contracts import Page
from core.platform.pauses import PauseCreate, PauseRequest, ResumeCreate, ResumeRequest
from core.platform.settings import Settings
from workflows.agents.session import AgentSessionWorkflow, session_workflow_id


async def start(
    body: SessionCreate,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    settings: Settings,
    limits: RateLimits,
    *,
    carried: SessionState | None = None,
    forked_from: str | None = None,
) -> SessionPublic:
    """Start a session (a fork carries the state it continues from)."""
    allow(principal, "operator", doing="start agent sessions")
    if not settings.llm_base_url:
        raise ApiError(
            503,
            "llm_not_configured",
            "agent sessions need an OpenAI-compatible endpoint: set TRELLIS_LLM_BASE_URL (for example "
            "https://api.openai.com/v1 or a local vLLM/Ollama/llama.cpp server's /v1) and TRELLIS_LLM_API_KEY, "
            "then restart the API and the worker",
        )
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
            forked_from=forked_from,
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
        max_tool_calls=settings.session_max_tool_calls,
        carried=carried,
        forked_from=forked_from,
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
    return await stored(engine, session_id)


async def fork(
    session_id: str,
    body: SessionFork,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    settings: Settings,
    limits: RateLimits,
) -> SessionPublic:
    """A new session from ``body.from_stage`` of this one: the outputs of the agents of the stages before
    it are carried (none of their LLM calls is made again), with the edited goal or context."""
    allow(principal, "operator", doing="fork agent sessions")
    source = await stored(engine, session_id)
    recorded = SessionState.model_validate(source.state or {})
    plan = stages(recorded.selected)
    if not recorded.selected:
        raise ApiError(409, "not_forkable", f"session {session_id} has not chosen its agents yet; nothing to fork")
    if body.from_stage >= len(plan):
        raise ApiError(
            422,
            "unknown_stage",
            f"session {session_id} has stages 0 to {len(plan) - 1} "
            f"({'; '.join(f'{i}: ' + ', '.join(s) for i, s in enumerate(plan))})",
            problems=[{"field": "from_stage", "message": f"at most {len(plan) - 1}"}],
        )
    earlier = [name for stage in plan[: body.from_stage] for name in stage]
    missing = [name for name in earlier if name not in recorded.outputs]
    if missing:
        raise ApiError(
            409,
            "not_forkable",
            f"session {session_id} has no recorded output of {', '.join(missing)} yet: fork it from an earlier stage",
        )
    carried = SessionState(
        selected=recorded.selected, outputs={name: recorded.outputs[name] for name in earlier}, stage=body.from_stage
    )
    create = SessionCreate(
        goal=body.goal if body.goal is not None else source.goal,
        context=body.context if body.context is not None else await _context_of(engine, session_id),
        agents=recorded.selected,
        approval_required=source.approval_required,
        token_budget=source.token_budget,
    )
    return await start(create, principal, engine, gateway, settings, limits, carried=carried, forked_from=session_id)


async def _context_of(engine: AsyncEngine, session_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await store.session_context(conn, session_id)


async def pause(
    session_id: str, body: PauseCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> SessionPublic:
    request = PauseRequest(actor=principal.name, actor_role=principal.role, reason=body.reason)
    return await _pause_change(session_id, principal, engine, gateway, AgentSessionWorkflow.pause, request, "pause")


async def resume(
    session_id: str, body: ResumeCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> SessionPublic:
    request = ResumeRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _pause_change(session_id, principal, engine, gateway, AgentSessionWorkflow.resume, request, "resume")


async def _pause_change(
    session_id: str,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    update: Any,
    request: PauseRequest | ResumeRequest,
    verb: str,
) -> SessionPublic:
    allow(principal, "operator", doing=f"{verb} agent sessions")
    session = await stored(engine, session_id)
    ensure_starter(principal, session.created_by, f"session {session_id}", verb)
    if session.completed_ts is not None:
        raise ApiError(409, "session_finished", f"session is {session.session_status}; nothing to {verb}")
    try:
        await gateway.update(session.workflow_id or session_workflow_id(session_id), update, request)
    except WorkflowNotFound as exc:
        raise ApiError(409, "session_finished", f"session {session_id} has finished; nothing to {verb}") from exc
    return await stored(engine, session_id)


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
