"""Orchestrator agents: definitions (seeded from packs/agents/standard.json), their output schemas, and the
orchestrator's delegation plan."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.agents.tables import StoredAgent
from core.platform.contracts import RequestModel, RequestPart
from core.platform.paths import PACKS_DIR
from core.platform.schemas import check_bounded_schema

AGENTS_FILE = PACKS_DIR / "agents" / "standard.json"
# The delegation order of seed 000 / UC-3: planner, then these in parallel, then validator, reporter last.
PARALLEL_AFTER_PLANNER = ("estimator", "resource", "risk")


class AgentTool(RequestPart):
    """A tool an agent may call (issue 25): a tool of the step registry (MCP tools included, as
    ``<server>.<tool>``). ``fixed`` are parameters the admin sets and the model can neither see nor
    change: an http.request's ``url`` (its scheme, host and port; the model may add ``path`` and
    ``query``), ``sign`` and ``headers`` can only be fixed, so a URL host or a secret name never comes
    from the model."""

    tool: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    fixed: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(default=None, max_length=1000)


class ToolLimits(RequestPart):
    """Bounds of an agent's tool use: tool calls per model turn and per agent call (a session: per
    session), model turns per call, invalid calls the model may correct, and a time limit per tool call."""

    per_turn: int = Field(default=5, ge=1, le=20)
    per_call: int = Field(default=20, ge=1, le=200)
    rounds: int = Field(default=8, ge=1, le=30)
    invalid: int = Field(default=3, ge=0, le=10)
    timeout_seconds: int = Field(default=60, ge=1, le=600)


# Checks an agent's tools against the tool registry (core/steps/acting.py's check_agent_tools, handed to the
# agents' routes where the domains are composed): the problem, or None.
ToolsCheck = Callable[[str, list[AgentTool], set[str]], str | None]  # (the agent's name, its tools, MCP servers)


class AgentSpec(BaseModel):
    """What a session carries about an agent (snapshot at session start)."""

    agent_name: str
    agent_type: str
    capabilities: list[str]
    system_prompt: str
    model: str | None = None
    output_schema: dict[str, Any]
    tools: list[AgentTool] = Field(default_factory=list)
    tool_limits: ToolLimits = Field(default_factory=ToolLimits)


def _check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    check_bounded_schema(schema, "output_schema", "agent output schemas")
    if schema.get("type") != "object":
        raise ValueError('output_schema must describe a JSON object ({"type": "object", ...})')
    return schema


AGENT_NAME_PATTERN = r"^[a-z][a-z0-9_\-]*$"
AgentName = Annotated[str, Field(min_length=1, max_length=100, pattern=AGENT_NAME_PATTERN)]


class AgentDefinition(RequestModel):
    """An agent as PUT replaces it: everything but its name, which the path gives."""

    agent_type: str = Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_\-]*$")
    capabilities: list[str] = Field(min_length=1, max_length=30)
    system_prompt: str = Field(min_length=1, max_length=20_000)
    description: str | None = Field(default=None, max_length=2000)
    model: str | None = Field(
        default=None, max_length=300, description="The endpoint's model id (local servers use long paths)"
    )
    output_schema: dict[str, Any] = Field(
        description="A JSON schema of an object, without pattern/patternProperties or remote $ref",
        json_schema_extra={"required": ["type"], "properties": {"type": {"const": "object"}}},
    )
    active_flag: bool = True
    tools: list[AgentTool] = Field(default_factory=list, max_length=30, description="Tools the agent may call")
    tool_limits: ToolLimits = Field(default_factory=ToolLimits)

    _schema = field_validator("output_schema")(lambda cls, v: _check_schema(v))


class AgentCreate(AgentDefinition):
    agent_name: AgentName


class AgentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_name: str
    agent_type: str
    capabilities: list[str]
    system_prompt: str | None
    description: str | None
    model: str | None
    output_schema: dict[str, Any]
    active_flag: bool
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_limits: dict[str, Any] = Field(default_factory=dict)


def read_agent_pack() -> list[AgentCreate]:
    """The standard agents, then the agents the step-workflow packs call (packs/agents/workflows.json)."""
    files = [AGENTS_FILE, *sorted(p for p in AGENTS_FILE.parent.glob("*.json") if p != AGENTS_FILE)]
    return [AgentCreate.model_validate(a) for path in files for a in json.loads(path.read_text())]


async def seed_agents(engine: AsyncEngine) -> None:
    """Insert the standard agents that do not exist yet (edits made through the API are kept)."""
    async with engine.begin() as conn:
        existing = set((await conn.execute(select(StoredAgent.agent_name))).scalars())
        rows = [a.model_dump() for a in read_agent_pack() if a.agent_name not in existing]
        if rows:
            await conn.execute(insert(StoredAgent).values(rows).on_conflict_do_nothing())


def stages(selected: list[str]) -> list[list[str]]:
    """Delegation plan: planner first; estimator, resource, risk (and any other chosen agent) in
    parallel on the plan; then validator; reporter last with everything."""
    chosen = list(dict.fromkeys(selected))
    plan: list[list[str]] = []
    if "planner" in chosen:
        plan.append(["planner"])
    middle = [a for a in chosen if a not in ("planner", "validator", "reporter")]
    middle.sort(key=lambda a: (PARALLEL_AFTER_PLANNER.index(a) if a in PARALLEL_AFTER_PLANNER else 99, a))
    if middle:
        plan.append(middle)
    if "validator" in chosen:
        plan.append(["validator"])
    if "reporter" in chosen:
        plan.append(["reporter"])
    return plan
