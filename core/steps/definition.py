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

from pydantic import ConfigDict, Field, model_validator

from core.people.directory import Distribution
from core.platform.contracts import RequestModel, RequestPart

STEP_NAME = r"^[a-z][a-z0-9_]*$"
WORKFLOW_NAME = r"^[a-z][a-z0-9_]{0,99}$"
# GET /api/v1/workflows/schema is the published format; POST /api/v1/workflows/validate checks a definition.
RESERVED_NAMES = ("schema", "validate")
TOOL_NAME = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)+$"
SOURCE_NAME = r"^[a-z][a-z0-9_]{0,99}$"
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


Condition = Annotated[str, Field(min_length=1, max_length=2000)]
Who = Annotated[str, Field(min_length=1, max_length=200, description="A principal's name or a role")]
CONSTRUCTS = ("parallel", "branch", "foreach", "wait_event", "human_task")


class OnError(_Aliased):
    """What happens when a step fails its last attempt (seed 004).

    ``retry`` tries again ``maxRetries`` times with ``backoffStrategy``; ``skip`` records the error and
    goes on; ``escalate`` opens a human task for ``escalationTarget`` offering retry, skip or abort;
    ``compensate`` runs the compensations of the completed steps in reverse order and ends the run
    ``compensated`` (a saga)."""

    strategy: Literal["retry", "compensate", "escalate", "skip"]
    max_retries: int = Field(default=3, alias="maxRetries", ge=0, le=99)
    backoff_strategy: Literal["fixed", "linear", "exponential"] = Field(default="exponential", alias="backoffStrategy")
    initial_interval_ms: Milliseconds = Field(default=1000, alias="initialIntervalMs")
    max_interval_ms: Milliseconds = Field(default=60_000, alias="maxIntervalMs")
    compensation_step: str | None = Field(
        default=None,
        alias="compensationStep",
        pattern=STEP_NAME,
        max_length=100,
        description="The name of a step in the top-level compensations list that undoes this one",
    )
    escalation_target: Who | None = Field(default=None, alias="escalationTarget")


class StepSchedule(_Aliased):
    """Repeat the step on a Temporal timer (the seed's ``every-hour``) until ``until`` holds (CEL over the
    variables, with the last run's output as ``last``) or ``maxRuns`` runs are done."""

    every_ms: Milliseconds = Field(alias="everyMs")
    until: Condition | None = None
    max_runs: int = Field(default=24, alias="maxRuns", ge=1, le=10_000)


class Branch(_Aliased):
    name: str = Field(pattern=STEP_NAME, max_length=100)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)


class Parallel(_Aliased):
    """The branches run concurrently and join; each branch's outputs are then under its name."""

    branches: list[Branch] = Field(min_length=2, max_length=20)


class Conditional(_Aliased):
    """A CEL condition chooses ``then`` or ``else``."""

    condition: Condition
    then: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    else_: list[Step] = Field(default_factory=list, alias="else", max_length=MAX_STEPS)


class Foreach(_Aliased):
    """The steps run once per item (``${<as>}`` is the item, ``${<as>_index}`` its position), at most
    ``concurrency`` at a time; the results are a list in the items' order."""

    items: str = Field(min_length=4, max_length=500, description="A reference to a list: ${input.lines}")
    as_: str = Field(default="item", alias="as", pattern=STEP_NAME, max_length=100)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    concurrency: int = Field(default=1, ge=1, le=50)
    max_items: int = Field(default=1000, alias="maxItems", ge=1, le=10_000)


class WaitEvent(_Aliased):
    """Wait for an external event posted to POST /api/v1/events/{source} (the seed's addEventTrigger)."""

    source: str = Field(pattern=SOURCE_NAME, description="An event source declared in TRELLIS_EVENT_SOURCES")
    key: str = Field(min_length=1, max_length=500, description="What the event's key must equal (may hold references)")
    condition: Condition | None = Field(default=None, description="CEL over the event as `event` and the variables")
    timeout_ms: Milliseconds = Field(default=DAY_MS, alias="timeoutMs")


class Escalation(_Aliased):
    timeout_ms: Milliseconds = Field(alias="timeoutMs")
    escalate_to: Who = Field(alias="escalateTo")


class HumanTask(_Aliased):
    """A task in the inbox of ``assignee`` (a principal or a role). After ``timeoutMs`` the assignee is
    reminded; after ``escalation.timeoutMs`` ``escalateTo`` is notified and may decide too. The
    decision (approved, comment, actor, form fields) is the step's output."""

    assignee: Who
    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    timeout_ms: Milliseconds = Field(default=DAY_MS, alias="timeoutMs")
    escalation: Escalation | None = None
    form: dict[str, Any] | None = Field(
        default=None, description="A JSON Schema (an object's) the decision's fields must satisfy"
    )
    distribute: Distribution | None = Field(
        default=None,
        description="Share the task among a role's people (round_robin, least_loaded or skill, with a cap) "
        "instead of giving it to ``assignee``, which then holds it while everyone is at their cap",
    )


class Step(_Aliased):
    """One step: a tool call, or one construct (parallel, branch, foreach, wait_event, human_task)."""

    name: str = Field(pattern=STEP_NAME, max_length=100, description="Unique in the workflow")
    tool: str | None = Field(
        default=None,
        pattern=TOOL_NAME,
        max_length=200,
        description="A Trellis tool (entity.get, http.request, …) or an MCP server's tool as <server>.<tool>",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The tool's input; strings may hold ${input.x}, ${context.x}, ${step.x}"
    )
    parallel: Parallel | None = None
    branch: Conditional | None = None
    foreach: Foreach | None = None
    wait_event: WaitEvent | None = None
    human_task: HumanTask | None = None
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
    dependencies: list[Annotated[str, Field(pattern=STEP_NAME, max_length=100)]] | None = Field(
        default=None,
        max_length=MAX_STEPS,
        description="Run when these steps (of the same list) have finished; without it a step follows the one "
        "before it. [] starts at once.",
    )
    on_error: OnError | None = Field(default=None, alias="onError")
    schedule: StepSchedule | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("tool", *CONSTRUCTS) if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a step has exactly one of tool, {', '.join(CONSTRUCTS)}; this one has "
                + (", ".join(kinds) if kinds else "none")
            )
        if self.tool is None and self.params:
            raise ValueError("params belong to a tool step")
        return self

    @property
    def variable(self) -> str:
        return self.assign or self.name

    @property
    def kind(self) -> str:
        """The tool's name, or the construct's."""
        return self.tool or next(k for k in CONSTRUCTS if getattr(self, k) is not None)

    def children(self) -> list[list[Step]]:
        """The step lists this step holds (a parallel's branches, a branch's arms, a foreach's body)."""
        if self.parallel is not None:
            return [b.steps for b in self.parallel.branches]
        if self.branch is not None:
            return [self.branch.then, self.branch.else_]
        if self.foreach is not None:
            return [self.foreach.steps]
        return []


for _model in (Branch, Parallel, Conditional, Foreach):
    _model.model_rebuild()


def walk(steps: list[Step]) -> list[Step]:
    """Every step of the lists, nested ones included, depth first in written order."""
    found: list[Step] = []
    for step in steps:
        found.append(step)
        for inner in step.children():
            found += walk(inner)
    return found


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


class StepWorkflowDefinition(RequestModel):
    """A step workflow as stored (one version of it)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(pattern=WORKFLOW_NAME, description="lower_snake_case, unique")
    description: str = Field(default="", max_length=2000)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    compensations: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Tool steps that undo others (named by a step's onError.compensationStep); they never run in "
        "the normal flow",
    )
    config: WorkflowConfig = Field(default_factory=WorkflowConfig)
    enabled: bool = Field(default=True, description="A disabled workflow refuses new executions (409)")

    def wire(self) -> dict[str, Any]:
        """The definition as JSON, in the seed's spelling (what is stored and returned)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"enabled"}, exclude_none=True)


def visible(steps: list[Step]) -> list[Step]:
    """The steps whose outputs are seen after their list: all of them, nested ones too, except those
    inside a foreach (whose results are the foreach's own output, a list)."""
    found: list[Step] = []
    for step in steps:
        found.append(step)
        if step.foreach is None:
            for inner in step.children():
                found += visible(inner)
    return found
