"""Orchestrator agents (seed: /api/v1/orchestrator/agents): the registry sessions choose from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from api.deps import Admin, EngineDep, Reader, SettingsDep
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.agents import store
from core.agents.registry import AGENT_NAME_PATTERN, AgentCreate, AgentDefinition, AgentPublic, ToolsCheck
from core.platform.contracts import Page
from core.platform.settings import Settings

router = APIRouter(prefix="/api/v1/orchestrator/agents", tags=["orchestrator"])


PathName = Annotated[str, Path(min_length=1, max_length=100, pattern=AGENT_NAME_PATTERN)]


def _found(agent: AgentPublic | None, name: str) -> AgentPublic:
    if agent is None:
        raise ApiError(404, "not_found", f"no agent '{name}'")
    return agent


@router.get("", response_model=Page[AgentPublic])
async def list_agents(
    engine: EngineDep,
    _: Reader,
    active: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[AgentPublic]:
    async with engine.connect() as conn:
        return await store.agents_page(conn, active=active, limit=limit, offset=offset, cursor=cursor)


@router.get("/{name}", response_model=AgentPublic)
async def get_agent(name: PathName, engine: EngineDep, _: Reader) -> AgentPublic:
    """One agent. After its DELETE (a soft delete) it is still returned, with ``active_flag`` false."""
    async with engine.connect() as conn:
        return _found(await store.get_agent(conn, name), name)


def _tools_checked(name: str, body: AgentDefinition, settings: Settings, request: Request) -> None:
    check: ToolsCheck = request.app.state.agent_tools_check  # core/steps/acting.py, composed in api/main.py
    problem = check(name, body.tools, set(settings.mcp_servers))
    if problem is not None:
        raise ApiError(422, "invalid_value", f"tools: {problem}")


@router.post("", response_model=AgentPublic, status_code=201)
async def create_agent(
    body: AgentCreate, engine: EngineDep, settings: SettingsDep, request: Request, _: Admin
) -> AgentPublic:
    _tools_checked(body.agent_name, body, settings, request)
    async with engine.begin() as conn:
        created = await store.create_agent(conn, body)
    if created is None:
        raise ApiError(409, "agent_exists", f"an agent named '{body.agent_name}' exists; PUT to change it")
    return created


@router.put("/{name}", response_model=AgentPublic)
async def replace_agent(
    name: PathName, body: AgentDefinition, engine: EngineDep, settings: SettingsDep, request: Request, _: Admin
) -> AgentPublic:
    """Replace the agent named in the path (the body does not repeat the name). Its ``tools`` are tools of
    the step registry (MCP tools as <server>.<tool>) the agent may call, with parameters the admin fixes
    (an http.request's url: the model never chooses a host) and ``tool_limits``."""
    _tools_checked(name, body, settings, request)
    agent = AgentCreate.model_validate({**body.model_dump(), "agent_name": name})
    async with engine.begin() as conn:
        _found(await store.get_agent(conn, name), name)
        return _found(await store.replace_agent(conn, agent), name)


@router.delete("/{name}", response_model=AgentPublic)
async def deactivate_agent(name: PathName, engine: EngineDep, _: Admin) -> AgentPublic:
    """Soft delete (the seed's): the agent is deactivated, so no new session can use it, and it stays
    readable with ``active_flag`` false, since sessions refer to it. PUT it with ``active_flag`` true to
    bring it back."""
    async with engine.begin() as conn:
        _found(await store.get_agent(conn, name), name)
        return _found(await store.deactivate_agent(conn, name), name)
