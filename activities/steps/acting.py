"""The activities of an acting agent (issue 25): the offer of its tools (the registry's schemas, MCP tools
included, without what the admin fixed), and one tool call, run by the step tool's own activity code
under the same ledger, policy check and time limit, recorded in the agent log.

A tool call whose arguments are invalid, that a policy denies, or whose tool failed, is an outcome the
model is told, not a failure of the activity: the model may correct it. Only a lost attempt (a worker
died) is retried by Temporal, and the ledger makes that repeat no effect.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.steps.tools import StepToolActivities, tool_activities
from core.agents import store as agents_store
from core.agents.registry import AgentSpec, AgentTool
from core.platform import errors
from core.policy.contracts import ApprovalInput
from core.steps.acting import (
    AgentToolCall,
    AgentToolOutcome,
    Offer,
    OfferedTool,
    arguments_of,
    definition,
    function_name,
    offered_schema,
)
from core.steps.catalogue import Catalogue
from core.steps.contracts import ToolCall
from core.steps.mcp import McpUnavailable
from core.steps.tools import authored_secret_headers


class OfferRequest(BaseModel):
    tools: list[AgentTool]


class Delegated(BaseModel):
    """How an agent.call an agent made ended: the asked agent's answer (``output``) or ``error``."""

    call: AgentToolCall
    params: dict[str, Any]
    output: dict[str, Any] | None = None
    error: str | None = None
    latency_ms: int


def _tool_call(data: AgentToolCall, params: dict[str, Any]) -> ToolCall:
    """The step tool call an agent's tool call is, under the agent log's key (``agent.tool`` runs it,
    ``agent.delegate`` checks it against the policy)."""
    tool = data.offered.tool
    return ToolCall(
        execution_id=data.session_id,
        workflow=data.caller,
        path=data.key,
        position=0,
        name=data.request_id,
        tool=tool,
        params=params,
        timeout_ms=data.timeout_ms,
        started_ts=activity.info().started_time,
        secret_headers=authored_secret_headers(tool, data.offered.fixed),  # the admin's, never the model's
        agent=data.agent,
        agent_key=data.key,
        agent_session=data.session_id,
        approval_id=data.approval_id,
    )


class ActingActivities:
    def __init__(self, engine: AsyncEngine, tools: StepToolActivities, catalogue: Catalogue) -> None:
        self._engine = engine
        self._tools = tools
        self._catalogue = catalogue
        self._bound = tool_activities(tools)

    @activity.defn(name="agent.offer")
    async def offer(self, data: OfferRequest) -> Offer:
        offered: list[OfferedTool] = []
        taken: set[str] = set()
        for entry in data.tools:
            try:
                found = await self._catalogue.lookup(entry.tool)
            except McpUnavailable as exc:
                return Offer(problem=f"tool {entry.tool}: {exc}")
            if found is None or entry.tool == "workflow.run":
                return Offer(problem=f"tool {entry.tool} is not a tool an agent may call")
            asked: AgentSpec | None = None
            described = entry.description or found.description
            if entry.tool == "agent.call":
                name = str(entry.fixed.get("agent"))
                async with self._engine.connect() as conn:
                    asked = await agents_store.active_agent(conn, name)
                if asked is None:
                    return Offer(problem=f"agent.call: '{name}' is not an active agent of the registry")
                described = entry.description or (
                    f"Ask the {name} agent ({asked.agent_type}: {', '.join(asked.capabilities)}). "
                    "Put what it needs in `input`; it answers with a JSON object."
                )
            schema = offered_schema(entry.tool, found.params_schema, entry.fixed)
            function = function_name(f"ask_{asked.agent_name}" if asked else entry.tool, taken)
            offered.append(
                OfferedTool(
                    function=function,
                    tool=entry.tool,
                    fixed=entry.fixed,
                    parameters=schema,
                    definition=definition(function, described, schema),
                    agent=asked,
                )
            )
        return Offer(tools=offered)

    @activity.defn(name="agent.delegate")
    async def delegate(self, data: AgentToolCall) -> AgentToolOutcome:
        """May an agent ask another (an agent.call tool): its arguments checked, then the approval policy,
        as for any tool. ``allowed`` carries the checked params; the asking loop then runs the asked agent
        as its child, and ``delegated`` records what it answered."""
        started = time.perf_counter()
        try:
            params = arguments_of(data.offered, data.arguments)
        except ValueError as exc:
            return await self._ended(data, "invalid", {}, f"agent.call: {exc}", started)
        try:
            await self._tools.allowed(_tool_call(data, params))
        except ApplicationError as exc:
            refused = self._refused(exc)
            if refused is None:
                raise
            if refused.status == "denied":
                return await self._ended(data, "denied", params, exc.message, started)
            return refused
        return AgentToolOutcome(status="allowed", result=params)

    @activity.defn(name="agent.delegated")
    async def delegated(self, data: Delegated) -> None:
        """The agent log's row of an agent.call an agent made: what the asked agent answered, or why not."""
        async with self._engine.begin() as conn:
            await agents_store.record_tool_call(
                conn,
                session_id=data.call.session_id,
                agent=data.call.agent,
                key=data.call.key,
                tool="agent.call",
                arguments=data.params,
                status="completed" if data.error is None else "failed",
                output=data.output,
                error=data.error,
                latency_ms=data.latency_ms,
            )

    @activity.defn(name="agent.tool")
    async def tool(self, data: AgentToolCall) -> AgentToolOutcome:
        started = time.perf_counter()
        tool = data.offered.tool
        try:
            params = arguments_of(data.offered, data.arguments)
        except ValueError as exc:
            return await self._ended(data, "invalid", {}, f"{tool}: {exc}", started)
        call = _tool_call(data, params)
        run = self._bound.get(tool) or self._bound["mcp"]
        try:
            output = await run(call)
        except ApplicationError as exc:
            refused = self._refused(exc)
            if refused is not None and refused.status == "denied":
                return await self._ended(data, "denied", params, exc.message, started)
            if refused is not None:
                return refused
            if exc.type == errors.STEP_FAILED.type:
                invalid = "params are invalid" in exc.message
                return await self._ended(data, "invalid" if invalid else "failed", params, exc.message, started)
            raise
        result = output.model_dump(mode="json", by_alias=True, exclude={"already_done"})
        return AgentToolOutcome(status="completed", result=result)

    @staticmethod
    def _refused(exc: ApplicationError) -> AgentToolOutcome | None:
        """The policy's refusal (denied, or an approval to ask for) the model or the loop is told; None for
        any other error."""
        if exc.type == errors.APPROVAL_REQUIRED.type:
            details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
            return AgentToolOutcome(
                status="approval_required", error=exc.message, approval=ApprovalInput.model_validate(details)
            )
        if exc.type == errors.POLICY_DENIED.type:
            return AgentToolOutcome(status="denied", error=exc.message)
        return None

    async def _ended(
        self, data: AgentToolCall, status: Any, params: dict[str, Any], error: str, started: float
    ) -> AgentToolOutcome:
        async with self._engine.begin() as conn:
            await agents_store.record_tool_call(
                conn,
                session_id=data.session_id,
                agent=data.agent,
                key=data.key,
                tool=data.offered.tool,
                arguments=params or {"written": data.arguments[:4000]},
                status=status,
                error=error,
                latency_ms=int((time.perf_counter() - started) * 1000),
            )
        return AgentToolOutcome(status=status, error=error)
