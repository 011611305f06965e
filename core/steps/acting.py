"""Agents that act (issue 25): how an agent's tools are offered to the model, and how what the model
writes becomes a tool call. It lives with the step tools because an agent calls the same registry (MCP
tools included) under the same exactly-once ledger.

What the model writes is data. It fills the parameters the admin did not fix, and is validated against
the tool's input schema before anything runs; an http.request's scheme, host and port come only from the
agent definition's ``fixed.url`` (the model may add a ``path`` and a ``query``, percent-encoded), and its
``sign`` and ``headers`` (secret references) can only be fixed. A call that fails these checks goes back
to the model as an error it can correct.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, ValidationError

from core.agents.registry import AgentSpec, AgentTool
from core.platform.schemas import validation_error
from core.policy.contracts import ApprovalInput
from core.steps.catalogue import TRELLIS_TOOLS

# Parameters only an admin may set on an agent's tool (a URL host, a secret name, headers that may
# carry secret references; which agent another agent asks, and its token cap).
ADMIN_ONLY = {"http.request": {"url", "sign", "headers"}, "agent.call": {"agent", "max_tokens"}}
# How deep agents may ask agents: the agent a session or step asks is depth 0, an agent it asks depth 1,
# and one that agent asks depth 2, which can ask no further. A loop of agents naming each other ends here,
# refused to the model that asked.
MAX_AGENT_DEPTH = 2
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


class OfferedTool(BaseModel):
    """A tool as offered to the model: the function's name, the tool it is, and the admin's fixed params."""

    function: str
    tool: str
    fixed: dict[str, Any]
    parameters: dict[str, Any]  # the schema the model's arguments are checked against
    definition: dict[str, Any]  # the OpenAI tool definition
    agent: AgentSpec | None = None  # agent.call: the agent asked, as it was when the call was offered


class Offer(BaseModel):
    tools: list[OfferedTool] = Field(default_factory=list)
    problem: str | None = None  # a tool the agent lists that the registry does not have


class AgentToolCall(BaseModel):
    """One tool call of an acting agent: recorded in the agent log under ``key``."""

    key: str
    session_id: str  # the agent log's session: "session id", or "workflow:<execution>"
    agent: str
    caller: str
    request_id: str  # the model's id for this call
    offered: OfferedTool
    arguments: str  # as the model wrote them
    timeout_ms: int
    approval_id: str | None = None  # set when an approval granted this call


# "allowed": an agent.call may go ahead (the asked agent then runs as the asking loop's child).
ToolStatus = Literal["completed", "allowed", "invalid", "denied", "approval_required", "failed"]


class AgentToolOutcome(BaseModel):
    status: ToolStatus
    result: Any = None
    error: str | None = None
    approval: ApprovalInput | None = None  # what to ask, when the policy requires an approval


def function_name(tool: str, taken: set[str]) -> str:
    """An OpenAI function name (letters, digits, _ and -, at most 64) for a tool, unique in the offer."""
    base = _FUNCTION_NAME.sub("_", tool)[:60] or "tool"
    name, n = base, 2
    while name in taken:
        name, n = f"{base[:58]}_{n}", n + 1
    taken.add(name)
    return name


def offered_schema(tool: str, schema: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """The tool's input schema without what the admin fixed or only an admin may set; an http.request
    gets ``path`` and ``query`` instead of ``url``."""
    hidden = set(fixed) | ADMIN_ONLY.get(tool, set())
    properties = {k: v for k, v in (schema.get("properties") or {}).items() if k not in hidden}
    if tool == "http.request":
        properties["path"] = {"type": "string", "maxLength": 500, "description": "Appended to the fixed URL's path"}
        properties["query"] = {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Query parameters",
        }
    offered: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [r for r in schema.get("required", []) if r not in hidden],
        "additionalProperties": False,
    }
    if "$defs" in schema:
        offered["$defs"] = schema["$defs"]
    return offered


def definition(function: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": function, "description": description[:1000], "parameters": schema}}


def check_agent_tools(name: str, tools: list[AgentTool], mcp_servers: set[str]) -> str | None:
    """Why agent ``name``'s tool list cannot be saved: a tool the registry does not have (an MCP tool's
    server must be declared), a tool an agent may not call, a fixed parameter the tool does not take, an
    http.request without its fixed url, an agent.call without its fixed agent or asking the agent itself.
    None when it can. (Whether the asked agent exists is checked when the call is offered: agents may be
    saved in any order.)"""
    seen: set[str] = set()
    for entry in tools:
        key = f"agent.call:{entry.fixed.get('agent')}" if entry.tool == "agent.call" else entry.tool
        if key in seen:
            return f"tool {key} is listed twice"
        seen.add(key)
        if entry.tool == "workflow.run":
            return "workflow.run is not a tool an agent calls"
        if entry.tool == "agent.call" and entry.fixed.get("agent") == name:
            return "an agent cannot ask itself (agent.call's fixed.agent is this agent)"
        known = TRELLIS_TOOLS.get(entry.tool)
        if known is None:
            server = entry.tool.partition(".")[0]
            if "." not in entry.tool or server not in mcp_servers:
                return f"unknown tool '{entry.tool}': a Trellis tool, or <server>.<tool> of a declared MCP server"
        elif unknown := sorted(set(entry.fixed) - set(known.params_schema.get("properties", {}))):
            return f"tool {entry.tool} takes no parameter {', '.join(unknown)}"
        problem = check_fixed(entry)
        if problem is not None:
            return problem
    return None


def check_fixed(tool: AgentTool) -> str | None:
    """Why an agent's tool entry cannot be saved (an http.request without its fixed url); None when it can."""
    if tool.tool == "http.request":
        url = tool.fixed.get("url")
        if not isinstance(url, str):
            return "an agent's http.request tool needs fixed.url: the scheme, host and port are the admin's to set"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            return "fixed.url must be an absolute http(s) URL without a query or fragment"
    if tool.tool == "agent.call":
        asked = tool.fixed.get("agent")
        if not isinstance(asked, str) or not _ASKABLE.match(asked):
            return "an agent's agent.call tool needs fixed.agent: the name of the agent it may ask (the admin's to set)"
    return None


_ASKABLE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")  # agent.call's own pattern for an agent's name


_SEGMENT = re.compile(r"^[A-Za-z0-9._~\-]+$")


def _joined(url: str, path: str | None, query: dict[str, Any] | None) -> str:
    parts = urlsplit(url)
    segments = [s for s in (path or "").split("/") if s]
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.match(segment):
            raise ValueError(f"path segment '{segment[:50]}' is not allowed: letters, digits and . _ ~ - only, no '..'")
    joined = parts.path.rstrip("/") + ("/" + "/".join(quote(s) for s in segments) if segments else "")
    encoded = urlencode({str(k): str(v) for k, v in (query or {}).items()})
    return urlunsplit((parts.scheme, parts.netloc, joined or "/", encoded, ""))


def arguments_of(offered: OfferedTool, written: str) -> dict[str, Any]:
    """The tool's parameters from what the model wrote: parsed, checked against the offered schema, merged
    with the fixed params (which win). Raises ValueError with what to correct."""
    try:
        value = json.loads(written or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the arguments are not JSON ({exc.msg} at position {exc.pos})") from exc
    if not isinstance(value, dict):
        raise ValueError("the arguments must be a JSON object")
    offered_names = set(offered.parameters.get("properties", {}))
    if unknown := sorted(set(value) - offered_names):
        raise ValueError(
            f"the tool takes no argument {', '.join(unknown)}; its arguments are: {', '.join(sorted(offered_names))}"
        )
    params = {k: v for k, v in value.items() if k not in ("path", "query") or offered.tool != "http.request"}
    params.update(offered.fixed)
    if offered.tool == "http.request":
        params["url"] = _joined(offered.fixed["url"], value.get("path"), value.get("query"))
    known = TRELLIS_TOOLS.get(offered.tool)
    if known is not None and known.params_model is not None:
        try:  # a Trellis tool's own model: the same check its step gets
            known.params_model.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ValueError(f"the arguments do not match the tool's schema: {problems}") from exc
        return params
    problem = validation_error(offered.parameters, value)
    if problem is not None and not problem.startswith("cannot be checked"):  # else the MCP server checks them
        raise ValueError(f"the arguments do not match the tool's schema {problem}")
    return params
