"""The JSON step format (seed 003): a workflow is a list of steps, each calling one tool with
parameters, assigning its result to a variable, optionally guarded by a condition, with retries.

    {"name": "quote_to_order", "description": "…",
     "steps": [{"name": "quote", "tool": "entity.get", "params": {"id": "${input.quote_id}"},
                "assign": "q", "if": "${input.quote_id}",
                "retry": {"maxAttempts": 3, "backoff": "linear", "initialIntervalMs": 500}}],
     "config": {"timeoutMs": 300000, "continueOnError": false, "maxRetries": 0}}

This module is the shape (published as JSON Schema at GET /api/v1/workflows/schema); the semantic
checks that need the tool catalogue are core/steps/validation.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from core.platform.contracts import RequestModel, RequestPart

STEP_NAME = r"^[a-z][a-z0-9_]*$"
WORKFLOW_NAME = r"^[a-z][a-z0-9_]{0,99}$"
RESERVED_NAMES = ("schema",)  # GET /api/v1/workflows/schema is the published format
TOOL_NAME = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)+$"
MAX_STEPS = 200
DAY_MS = 24 * 3600 * 1000

Milliseconds = Annotated[int, Field(ge=1, le=30 * DAY_MS)]


class _Aliased(RequestPart):
    """camelCase on the wire, as the seed writes it; Python names inside."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class StepRetry(_Aliased):
    """How often a step is tried and how long to wait between attempts.

    ``fixed`` waits ``initialIntervalMs`` each time, ``linear`` waits n times ``initialIntervalMs`` before
    attempt n+1, ``exponential`` doubles it; every wait is capped by ``maxIntervalMs``."""

    max_attempts: int = Field(alias="maxAttempts", ge=1, le=100)
    backoff: Literal["fixed", "linear", "exponential"] = "exponential"
    initial_interval_ms: Milliseconds = Field(default=1000, alias="initialIntervalMs")
    max_interval_ms: Milliseconds = Field(default=60_000, alias="maxIntervalMs")


class Step(_Aliased):
    name: str = Field(pattern=STEP_NAME, max_length=100, description="Unique in the workflow")
    tool: str = Field(
        pattern=TOOL_NAME,
        max_length=200,
        description="A Trellis tool (entity.get, http.request, …) or an MCP server's tool as <server>.<tool>",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The tool's input; strings may hold ${input.x}, ${context.x}, ${step.x}"
    )
    assign: str | None = Field(
        default=None, pattern=STEP_NAME, max_length=100, description="A variable name for the step's output"
    )
    if_: str | None = Field(
        default=None,
        alias="if",
        min_length=1,
        max_length=2000,
        description='"${ref}" runs the step when the reference is truthy; any other text is a CEL expression '
        "over input, context and earlier steps",
    )
    retry: StepRetry | None = None
    timeout_ms: Milliseconds | None = Field(
        default=None, alias="timeoutMs", description="Time limit of each attempt (default 30 s)"
    )

    @property
    def variable(self) -> str:
        return self.assign or self.name


class WorkflowConfig(_Aliased):
    timeout_ms: Milliseconds = Field(default=3600 * 1000, alias="timeoutMs", description="The whole run's time limit")
    continue_on_error: bool = Field(
        default=False,
        alias="continueOnError",
        description="A step failing its last attempt is recorded and the run goes on (it then completes, listing "
        "the errors)",
    )
    max_retries: int = Field(
        default=0, alias="maxRetries", ge=0, le=99, description="Retries of a step without its own"
    )
    token_budget: int | None = Field(
        default=None, alias="tokenBudget", ge=1, description="Tokens the run's agent.call steps may use together"
    )


class WorkflowDefinition(RequestModel):
    """A step workflow as stored (one version of it)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(pattern=WORKFLOW_NAME, description="lower_snake_case, unique")
    description: str = Field(default="", max_length=2000)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    config: WorkflowConfig = Field(default_factory=WorkflowConfig)
    enabled: bool = Field(default=True, description="A disabled workflow refuses new executions (409)")

    def wire(self) -> dict[str, Any]:
        """The definition as JSON, in the seed's spelling (what is stored and returned)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"enabled"}, exclude_none=True)
