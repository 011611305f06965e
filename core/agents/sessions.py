"""Contracts of multi-agent orchestrator sessions (seed 000 "Orchestrator Session Lifecycle", UC-3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.agents.registry import AgentSpec
from core.platform.contracts import RequestModel
from core.platform.pauses import PauseInfo

SessionStatus = Literal[
    "initializing", "running", "awaiting_approval", "completed", "failed", "cancelled", "budget_exceeded"
]
ORCHESTRATOR = "orchestrator"  # the name the agent-selection call is logged under


class SessionCreate(RequestModel):
    goal: str = Field(min_length=3, max_length=5000)
    context: dict[str, Any] = Field(default_factory=dict)
    agents: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Use these agents instead of letting the orchestrator choose",
    )
    approval_required: bool = False
    approval_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=1, le=90 * 24 * 3600)
    token_budget: int | None = Field(default=None, ge=100, le=100_000_000)


class SessionInput(BaseModel):
    session_id: str
    goal: str
    context: dict[str, Any]
    agents: list[AgentSpec]
    requested: list[str] | None
    approval_required: bool
    approval_timeout_seconds: int
    token_budget: int | None
    history_limit: int
    max_tool_calls: int = 50  # tool calls across the session's acting agents (issue 25)
    carried: SessionState | None = None  # set when the session continues as new, or is a fork
    forked_from: str | None = None  # a fork's first run: the session it continues from a stage


class SessionState(BaseModel):
    """Everything a session has done so far: survives continue-as-new."""

    status: SessionStatus = "running"
    selected: list[str] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    stage: int = 0
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    revision_feedback: str | None = None
    revised: bool = False
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    runs: int = 1
    reason: str | None = None
    paused: PauseInfo | None = None
    tool_calls: int = 0


class AgentCallInput(BaseModel):
    session_id: str
    agent: AgentSpec
    action_type: str
    input: dict[str, Any]
    call_key: str
    max_tokens: int | None = None
    breaker: bool = False  # step workflows: the agent's circuit breaker guards the call
    # An agent with tools (issue 25): the functions offered (OpenAI tool definitions), and the turns so far
    # (the model's tool calls and each call's result), sent after the system and user messages.
    functions: list[dict[str, Any]] = Field(default_factory=list)
    conversation: list[dict[str, Any]] = Field(default_factory=list)
    last_turn: bool = False  # the loop's last turn: the model must answer, not call tools (tool_choice none)


class ToolRequest(BaseModel):
    """One tool call the model asked for in a turn: its id (which its result must name), the function
    and the arguments as the model wrote them (JSON text, validated before anything runs)."""

    id: str
    name: str
    arguments: str


class AgentCallResult(BaseModel):
    output: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int
    model: str
    tool_calls: list[ToolRequest] = Field(default_factory=list)  # a turn that asked for tools, not an answer
    tool_calls_made: int = 0  # an acting agent's call: the tools it ran


class ActingInput(BaseModel):
    """An agent call with tools, run as the ``AgentActing`` workflow (workflows/steps/acting.py), a child
    of the session or step run that asked: the model's loop, each tool call its own activity."""

    call: AgentCallInput
    subject_kind: Literal["agent"] = "agent"
    caller: str  # who the run is: "session:<id>" or "workflow:<name>:<execution>"
    tool_calls_left: int | None = None  # a session's remaining tool calls across its agents
    depth: int = 0  # 0 for the agent a session or step asked; 1 for an agent that agent asked, and so on


def invalid_reply_details(prompt_tokens: int, completion_tokens: int, cut_by_budget: bool) -> dict[str, Any]:
    """The details of an agent call refused for invalid output: its callers (sessions, step runs) count
    these tokens, and a session ends as budget_exceeded when its budget cut the reply off."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cut_by_budget": cut_by_budget}


def _invalid_reply_details(cause: BaseException | None) -> dict[str, Any]:
    details = getattr(cause, "details", None) or ()
    return details[0] if details and isinstance(details[0], dict) else {}


def tokens_of_failed_call(cause: BaseException | None) -> int:
    """The tokens a failed agent call reports (the rounds of an invalid reply), else 0."""
    found = _invalid_reply_details(cause)
    return int(found.get("prompt_tokens", 0)) + int(found.get("completion_tokens", 0))


def failed_call_cut_by_budget(cause: BaseException | None) -> bool:
    """Whether a failed agent call's reply was cut off at the cap its caller's remaining budget set."""
    return bool(_invalid_reply_details(cause).get("cut_by_budget"))


class SessionRecord(BaseModel):
    """A status change of the session row (and its working state)."""

    session_id: str
    status: SessionStatus
    state: SessionState
    final: bool = False
    summary_text: str | None = None
    final_output: dict[str, Any] | None = None


class SessionDecision(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = None
    actor: str


class SessionDecisionCreate(RequestModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=5000)


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session_id: str
    workflow_id: str | None
    goal: str
    session_status: str
    status_reason: str | None
    active_agents: list[Any]
    approval_required: bool
    token_budget: int | None
    tokens_used: int
    cost_usd: float
    final_output: dict[str, Any] | None
    state: dict[str, Any] | None = None
    started_ts: datetime
    completed_ts: datetime | None
    created_by: str | None = Field(default=None, description="Who started the session (may cancel it)")
    paused: PauseInfo | None = None
    forked_from: str | None = Field(default=None, description="The session this one was forked from")


class AgentLogPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_name: str
    action_type: str | None
    input_data: dict[str, Any] | None
    output_data: dict[str, Any] | None
    execution_status: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int | None
    error: str | None
    execution_ts: datetime
    finished_ts: datetime | None


SessionInput.model_rebuild()


class SessionFork(RequestModel):
    """Fork a session from a stage: the agents of the stages before it keep their recorded outputs (no
    LLM call is made again); the stage and those after it run anew, with the edited goal or context."""

    from_stage: int = Field(ge=0, le=50, description="The first stage to run again (0: the planner's)")
    goal: str | None = Field(default=None, min_length=3, max_length=5000, description="Default: the original's")
    context: dict[str, Any] | None = Field(default=None, description="Default: the original's")
