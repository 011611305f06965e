"""Multi-agent orchestration: agents, and sessions (seed: /api/v1/orchestrator/session …)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import insert, select, update
from temporalio.client import WorkflowQueryFailedError
from temporalio.common import SearchAttributePair
from temporalio.service import RPCError

from api.deps import Admin, Approver, EngineDep, Operator, Reader, SettingsDep, TemporalDep
from api.errors import ApiError
from api.gateway import execute_update, start_workflow
from api.pagination import Limit, Offset, page_of
from core import search_attributes as sa
from core.agents import AgentCreate, AgentPublic, AgentSpec
from core.db import OrchestratorAgent, OrchestratorAgentLog, OrchestratorSession, OrchestratorState
from core.models import Page
from core.sessions import (
    AgentLogPublic,
    SessionCreate,
    SessionDecision,
    SessionDecisionCreate,
    SessionInput,
    SessionPublic,
)
from workflows.agent_session import AgentSessionWorkflow, session_workflow_id

router = APIRouter(prefix="/api/v1/orchestrator", tags=["orchestrator"])


def _agent(row: Any) -> AgentPublic:
    return AgentPublic(
        id=str(row.id),
        agent_name=row.agent_name,
        agent_type=row.agent_type,
        capabilities=row.capabilities,
        system_prompt=row.system_prompt,
        description=row.description,
        model=row.model,
        output_schema=row.output_schema,
        active_flag=row.active_flag,
    )


@router.get("/agents", response_model=Page[AgentPublic])
async def list_agents(
    engine: EngineDep,
    _: Reader,
    active: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AgentPublic]:
    stmt = select(OrchestratorAgent.__table__)
    if active is not None:
        stmt = stmt.where(OrchestratorAgent.active_flag.is_(active))
    return await page_of(engine, stmt, order_by=[OrchestratorAgent.agent_name], limit=limit, offset=offset, item=_agent)


async def _agent_row(engine: EngineDep, name: str) -> Any:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(OrchestratorAgent.__table__).where(OrchestratorAgent.agent_name == name))
        ).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"no agent '{name}'")
    return row


@router.get("/agents/{name}", response_model=AgentPublic)
async def get_agent(name: str, engine: EngineDep, _: Reader) -> AgentPublic:
    return _agent(await _agent_row(engine, name))


@router.post("/agents", response_model=AgentPublic, status_code=201)
async def create_agent(body: AgentCreate, engine: EngineDep, _: Admin) -> AgentPublic:
    async with engine.begin() as conn:
        exists = (
            await conn.execute(select(OrchestratorAgent.id).where(OrchestratorAgent.agent_name == body.agent_name))
        ).first()
        if exists:
            raise ApiError(409, "agent_exists", f"an agent named '{body.agent_name}' exists; PUT to change it")
        await conn.execute(insert(OrchestratorAgent).values(**body.model_dump()))
    return _agent(await _agent_row(engine, body.agent_name))


@router.put("/agents/{name}", response_model=AgentPublic)
async def replace_agent(name: str, body: AgentCreate, engine: EngineDep, _: Admin) -> AgentPublic:
    if body.agent_name != name:
        raise ApiError(422, "validation_error", "agent_name in the body must match the name in the path")
    await _agent_row(engine, name)
    async with engine.begin() as conn:
        await conn.execute(
            update(OrchestratorAgent)
            .where(OrchestratorAgent.agent_name == name)
            .values(**body.model_dump(), updated_ts=datetime.now(UTC))
        )
    return _agent(await _agent_row(engine, name))


@router.delete("/agents/{name}", response_model=AgentPublic)
async def deactivate_agent(name: str, engine: EngineDep, _: Admin) -> AgentPublic:
    await _agent_row(engine, name)
    async with engine.begin() as conn:
        await conn.execute(
            update(OrchestratorAgent)
            .where(OrchestratorAgent.agent_name == name)
            .values(active_flag=False, updated_ts=datetime.now(UTC))
        )
    return _agent(await _agent_row(engine, name))


# --------------------------------------------------------------------------- sessions


@router.post("/session", response_model=SessionPublic, status_code=201)
async def start_session(
    body: SessionCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep, principal: Operator
) -> SessionPublic:
    if not settings.llm_base_url:
        raise ApiError(
            503,
            "llm_not_configured",
            "agent sessions need an OpenAI-compatible endpoint: set TRELLIS_LLM_BASE_URL (for example "
            "https://api.openai.com/v1 or a local vLLM/Ollama/llama.cpp server's /v1) and TRELLIS_LLM_API_KEY, "
            "then restart the API and the worker",
        )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(OrchestratorAgent.__table__).where(OrchestratorAgent.active_flag.is_(True)))
        ).all()
    agents = [
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
    known = {a.agent_name for a in agents}
    unknown = sorted(set(body.agents or []) - known)
    if unknown:
        raise ApiError(
            422,
            "unknown_agent",
            f"no active agent named {', '.join(unknown)}; active agents: {', '.join(sorted(known))}",
        )
    session_id = f"sess-{uuid.uuid4().hex[:16]}"
    workflow_id = session_workflow_id(session_id)
    async with engine.begin() as conn:
        await conn.execute(
            insert(OrchestratorSession).values(
                session_id=session_id,
                goal=body.goal,
                orchestrator_prompt="You are an expert project orchestrator.",
                session_status="initializing",
                workflow_id=workflow_id,
                context=body.context,
                approval_required=body.approval_required,
                token_budget=body.token_budget,
                created_by=principal.name,
            )
        )
    data = SessionInput(
        session_id=session_id,
        goal=body.goal,
        context=body.context,
        agents=agents,
        requested=body.agents,
        approval_required=body.approval_required,
        approval_timeout_seconds=body.approval_timeout_seconds,
        token_budget=body.token_budget,
        history_limit=settings.session_history_limit,
    )
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.SESSION_STATUS, "initializing"),
        SearchAttributePair(sa.SESSION_GOAL, body.goal[:500]),
    ]
    await start_workflow(
        temporal,
        settings,
        AgentSessionWorkflow.run,
        data,
        workflow_id=workflow_id,
        search_attributes=attributes,
        summary=f"Agent session: {body.goal[:200]}",
    )
    return await _session(engine, session_id)


async def _session(engine: EngineDep, session_id: str) -> SessionPublic:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(OrchestratorSession.__table__).where(OrchestratorSession.session_id == session_id)
            )
        ).one_or_none()
        state = (
            await conn.execute(select(OrchestratorState.state_data).where(OrchestratorState.session_id == session_id))
        ).scalar_one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"no session {session_id}")
    return SessionPublic(
        session_id=row.session_id,
        workflow_id=row.workflow_id,
        goal=row.goal,
        session_status=row.session_status,
        status_reason=row.status_reason,
        active_agents=row.active_agents,
        approval_required=row.approval_required,
        token_budget=row.token_budget,
        tokens_used=row.tokens_used,
        cost_usd=float(row.cost_usd),
        final_output=row.final_output,
        state=state,
        started_ts=row.started_ts,
        completed_ts=row.completed_ts,
    )


@router.get("/session/{session_id}", response_model=SessionPublic)
async def get_session(session_id: str, engine: EngineDep, temporal: TemporalDep, _: Reader) -> SessionPublic:
    """The stored session; while it runs, ``state`` comes live from the workflow."""
    stored = await _session(engine, session_id)
    if stored.completed_ts is None and stored.workflow_id:
        try:
            live = await temporal.get_workflow_handle(stored.workflow_id).query(AgentSessionWorkflow.progress)
            stored.state = live.model_dump(mode="json")
        except (RPCError, WorkflowQueryFailedError):
            pass
    return stored


@router.get("/session/{session_id}/logs", response_model=Page[AgentLogPublic])
async def session_logs(
    session_id: str,
    engine: EngineDep,
    _: Reader,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AgentLogPublic]:
    await _session(engine, session_id)
    stmt = select(OrchestratorAgentLog.__table__).where(OrchestratorAgentLog.session_id == session_id)
    return await page_of(
        engine,
        stmt,
        order_by=[OrchestratorAgentLog.execution_ts, OrchestratorAgentLog.agent_name],
        limit=limit,
        offset=offset,
        item=lambda r: AgentLogPublic(
            id=str(r.id),
            agent_name=r.agent_name,
            action_type=r.action_type,
            input_data=r.input_data,
            output_data=r.output_data,
            execution_status=r.execution_status,
            model=r.model,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cost_usd=float(r.cost_usd),
            latency_ms=r.latency_ms,
            error=r.error,
            execution_ts=r.execution_ts,
            finished_ts=r.finished_ts,
        ),
    )


@router.post("/session/{session_id}/approval", response_model=SessionPublic)
async def decide_session(
    session_id: str, body: SessionDecisionCreate, engine: EngineDep, temporal: TemporalDep, principal: Approver
) -> SessionPublic:
    stored = await _session(engine, session_id)
    if stored.session_status != "awaiting_approval":
        raise ApiError(
            409,
            "not_awaiting_approval",
            f"session is {stored.session_status}; only a session awaiting approval takes a decision",
        )
    handle = temporal.get_workflow_handle(stored.workflow_id or session_workflow_id(session_id))
    await execute_update(
        handle,
        AgentSessionWorkflow.decide,
        SessionDecision(decision=body.decision, comment=body.comment, actor=principal.name),
    )
    return await _session(engine, session_id)


@router.post("/session/{session_id}/cancel", response_model=SessionPublic)
async def cancel_session(session_id: str, engine: EngineDep, temporal: TemporalDep, _: Operator) -> SessionPublic:
    stored = await _session(engine, session_id)
    if stored.completed_ts is not None:
        raise ApiError(409, "session_finished", f"session is {stored.session_status}; nothing to cancel")
    await temporal.get_workflow_handle(stored.workflow_id or session_workflow_id(session_id)).cancel()
    return stored
