"""The step tools: each one's input model, output model and default time limit, declared with the one
tool type (core/platform/tools.py). Their activities are activities/steps/tools.py; the catalogue that
adds automation's rule actions and the MCP servers' tools is core/steps/catalogue.py.

A step's ``params`` are validated against the input model when the workflow is saved (where their
types are known: a reference's type is only known when it is resolved) and again, resolved, by the
activity. Outputs are what ``${step.x}`` reads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio.common import RetryPolicy

from core.automation.actions import (
    SECRET_NAME,
    STEP_WORKFLOW_NAME,
    EntityType,
    authored_secrets,
    check_headers,
    check_http_url,
)
from core.effects.scripts import SCRIPTS
from core.platform import errors
from core.platform.contracts import JsonUuid, RequestPart
from core.platform.tools import RetrySpec, ToolOutput, ToolSpec, fixed_limit
from core.process.contracts import InstanceCreate, StateRef, TransitionCreate

Text = Annotated[str, Field(min_length=1, max_length=5000)]
Recipient = Annotated[str, Field(min_length=1, max_length=300)]


class StepToolError(BaseModel):
    """What a failed step attempt reports to the interpreter (ApplicationError details)."""

    message: str
    retryable: bool = True


# --------------------------------------------------------------------------- entities


class EntityGetParams(RequestPart):
    id: JsonUuid


class EntityCreateParams(RequestPart):
    entity_type: EntityType
    name: str = Field(min_length=1, max_length=300)
    status: str | None = Field(default=None, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    parent_id: JsonUuid | None = Field(default=None, description="Link the new entity as a child of this one")


class EntityUpdateParams(RequestPart):
    id: JsonUuid
    name: str | None = Field(default=None, min_length=1, max_length=300)
    status: str | None = Field(default=None, min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict, description="Fields to set (others are kept)")
    unset: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=100)


class EntityLinkParams(RequestPart):
    parent_id: JsonUuid
    child_id: JsonUuid


class EntityOutput(ToolOutput):
    id: str
    entity_type: str
    name: str
    status: str | None
    fields: dict[str, Any]
    version: int


class EntityLinkOutput(ToolOutput):
    parent_id: str
    child_id: str


# --------------------------------------------------------------------------- messages


class NotifySendParams(RequestPart):
    recipients: list[Recipient] = Field(min_length=1, max_length=100)
    subject: Text
    body: Text
    entity_id: JsonUuid | None = None


class NotifySendOutput(ToolOutput):
    recipients: list[str]
    subject: str


class EmailSendParams(RequestPart):
    to: str = Field(min_length=3, max_length=300, pattern=r"^[^@\s,;]+@[^@\s,;]+$")
    subject: Text
    body: str = Field(min_length=1, max_length=100_000)


class EmailSendOutput(ToolOutput):
    to: str
    message_id: str


# --------------------------------------------------------------------------- http


class HttpRequestParams(RequestPart):
    """A request with every safeguard webhooks have: the address policy (TRELLIS_WEBHOOK_ALLOW_HOSTS and
    public destinations), redirects checked again, at most TRELLIS_WEBHOOK_MAX_RESPONSE_BYTES read, its
    own time limit. The scheme, host and port must be written in the definition: references may only
    fill the path and query, each value percent-encoded. ``sign`` signs per Standard Webhooks with the
    secret of that name in TRELLIS_WEBHOOK_SECRETS; a ``webhook-id`` derived from (execution, step) is
    always sent, so a receiver can drop a repeat."""

    url: str = Field(min_length=8, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, Annotated[str, Field(max_length=2000)]] = Field(default_factory=dict, max_length=30)
    body: Any = None
    sign: str | None = Field(default=None, pattern=SECRET_NAME.pattern, description="A secret's name")
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        default=None, description="Statuses that count as success besides 2xx (e.g. 404 for a check)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_http_url(url)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return check_headers(headers)


def authored_secret_headers(tool: str, params: dict[str, Any]) -> dict[str, str]:
    """An http.request step's headers that its definition wrote as ``secret:<name>`` (name -> secret);
    computed from the definition's own params, before any reference is resolved."""
    headers = params.get("headers") if tool == "http.request" else None
    return authored_secrets(headers) if isinstance(headers, dict) else {}


class HttpRequestOutput(ToolOutput):
    status: int
    body: Any = Field(description="The answer's JSON, or its text when it is not JSON")
    truncated: bool
    webhook_id: str


# --------------------------------------------------------------------------- process instances


class InstanceStartParams(InstanceCreate):
    """Start a process instance of a template, as POST /api/v1/workflow-instance does. Its id derives
    from (execution, step), so an attempt repeated after a crash joins the instance already started."""


class InstanceTransitionParams(TransitionCreate):
    """Move a process instance to one of its allowed next states, as PUT …/transition does (by the
    step workflow's actor, with an operator's rights: an approval gate is decided by people)."""

    instance_id: JsonUuid


class InstanceOutput(ToolOutput):
    instance_id: str
    workflow_id: str
    template_code: str
    template_version: int
    current_state: StateRef
    allowed_next_states: list[StateRef]
    workflow_status: str
    success: bool | None


# --------------------------------------------------------------------------- scripts, agents, workflows


class ScriptRunParams(RequestPart):
    script_id: str = Field(min_length=1, max_length=100)
    entity_id: JsonUuid = Field(description="The entity the script runs on; its result fields are set on it")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("script_id")
    @classmethod
    def _known(cls, script_id: str) -> str:
        if script_id not in SCRIPTS:
            raise ValueError(f"unknown script '{script_id}'; registered scripts: {', '.join(sorted(SCRIPTS))}")
        return script_id


class ScriptRunOutput(ToolOutput):
    script_id: str
    result: dict[str, Any]


class AgentCallParams(RequestPart):
    agent: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    input: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int | None = Field(default=None, ge=16, le=100_000)


class AgentCallOutput(ToolOutput):
    """The agent's output (valid against its output schema) and what the call cost."""

    output: dict[str, Any]
    agent: str
    model: str
    tokens: int
    cost_usd: float


class WorkflowRunParams(RequestPart):
    workflow: str = Field(pattern=STEP_WORKFLOW_NAME)
    input: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)


class WorkflowRunOutput(ToolOutput):
    execution_id: str
    status: str
    output: dict[str, Any]


class McpCallOutput(ToolOutput):
    """An MCP tool's answer: ``result`` is its structured content when it gives one, else its text parts
    joined, else its content items; ``content`` keeps every item as the protocol writes it (text, image,
    audio, resource, resource_link, with annotations); ``json`` is the text read as JSON when it is JSON."""

    result: Any
    is_error: bool = False
    content: list[dict[str, Any]] = Field(default_factory=list)
    json_: Any = Field(default=None, alias="json")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


# --------------------------------------------------------------------------- declarations


def infrastructure_retry(_: RetrySpec | None = None) -> RetryPolicy:
    """Temporal retries a step tool's activity only when the attempt was lost (a worker died, a time
    limit passed with no answer): a tool's own failure is raised non-retryable and the interpreter
    decides, by the step's retry settings, whether and when to try again (docs/decisions/0010)."""
    return errors.retry_policy(initial=timedelta(seconds=1), maximum=timedelta(seconds=10), attempts=5)


def _tool(name: str, params: type[Any], output: type[Any], seconds: float, description: str) -> ToolSpec[Any, Any]:
    return ToolSpec(name, params, output, fixed_limit(seconds), infrastructure_retry, description=description)


STEP_TOOLS: dict[str, ToolSpec[Any, Any]] = {
    spec.name: spec
    for spec in (
        _tool("entity.get", EntityGetParams, EntityOutput, 30, "Read an entity"),
        _tool("entity.create", EntityCreateParams, EntityOutput, 30, "Create an entity (optionally as a child)"),
        _tool("entity.update", EntityUpdateParams, EntityOutput, 30, "Change an entity's name, status or fields"),
        _tool("entity.link", EntityLinkParams, EntityLinkOutput, 30, "Link two entities as parent and child"),
        _tool("notify.send", NotifySendParams, NotifySendOutput, 30, "Store a notification per recipient"),
        _tool("email.send", EmailSendParams, EmailSendOutput, 60, "Send an e-mail over SMTP"),
        _tool("http.request", HttpRequestParams, HttpRequestOutput, 30, "Call a URL with the webhook safeguards"),
        _tool("script.run", ScriptRunParams, ScriptRunOutput, 30, "Run a registered script on an entity"),
        _tool("agent.call", AgentCallParams, AgentCallOutput, 300, "Ask one agent of the registry"),
        _tool("instance.start", InstanceStartParams, InstanceOutput, 60, "Start a process instance"),
        _tool("instance.transition", InstanceTransitionParams, InstanceOutput, 60, "Move a process instance on"),
        _tool("workflow.run", WorkflowRunParams, WorkflowRunOutput, 3600, "Run another step workflow as a child"),
    )
}
