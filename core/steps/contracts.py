"""What the step-workflow API takes and answers, and what the interpreter workflow and its activities
exchange (one model in, one out, so fields can be added without breaking replays)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.experiments.contracts import VariantArm
from core.people.directory import Distribution
from core.platform.contracts import RequestModel
from core.platform.pauses import PauseInfo

ExecutionStatus = Literal["pending", "running", "completed", "failed", "cancelled", "compensated"]
StepStatus = Literal["completed", "failed", "skipped"]


def execution_workflow_id(execution_id: str) -> str:
    return f"step-execution-{execution_id}"


# ------------------------------------------------------------------ API


class RetryRequest(RequestModel):
    """Re-run an execution from a step, as a new execution linked to it, optionally with edited input or
    context (the steps before ``from_step`` keep their recorded outputs)."""

    from_step: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=100,
        description="A top-level step: it and the steps after it run again, the ones before it are reused",
    )
    input: dict[str, Any] | None = Field(default=None, description="Edited input (default: the original's)")
    context: dict[str, Any] | None = Field(default=None, description="Edited context (default: the original's)")


class ExecuteRequest(RequestModel):
    input: dict[str, Any] = Field(default_factory=dict, description="What ${input.x} reads")
    context: dict[str, Any] = Field(default_factory=dict, description="What ${context.x} reads (e.g. a repository)")
    version: int | None = Field(default=None, ge=1, le=1_000_000, description="A stored version; default the latest")


class WorkflowPublic(BaseModel):
    name: str
    version: int
    description: str
    enabled: bool
    definition: dict[str, Any]
    created_by: str | None
    created_ts: datetime


class WorkflowVersionPublic(BaseModel):
    version: int
    enabled: bool
    created_by: str | None
    created_ts: datetime
    running: int = Field(default=0, description="Executions of this version still pending or running")


class StepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    path: str
    position: int
    name: str
    tool: str
    status: StepStatus
    input: Any | None
    output: Any | None
    error: str | None
    retry_count: int
    started_ts: datetime | None
    finished_ts: datetime


class LiveState(BaseModel):
    """What the running workflow says of itself (a query): where it is and what it waits for."""

    current_step: str | None = None
    attempt: int = 0
    waiting_until: datetime | None = None
    steps_done: int = 0
    tokens_used: int = 0
    paused: PauseInfo | None = None


class StepExecutionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workflow_name: str
    workflow_version: int
    temporal_workflow_id: str
    parent_execution_id: uuid.UUID | None
    status: ExecutionStatus
    input: dict[str, Any]
    context: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    step_errors: list[dict[str, Any]]
    trigger: dict[str, Any]
    created_by: str | None
    created_ts: datetime
    started_ts: datetime | None
    finished_ts: datetime | None
    paused: PauseInfo | None = None
    variant: str | None = Field(default=None, description="The experiment variant it was routed to, if any")


class StepExecutionDetail(StepExecutionPublic):
    steps: list[StepPublic]
    live: LiveState | None = None


# ------------------------------------------------------------------ interpreter


class StepError(BaseModel):
    step: str
    tool: str
    error: str


class Compensable(BaseModel):
    """A completed step that names a compensation: what a saga undoes, in reverse order, if it must."""

    path: str
    step: str
    compensation: str
    output: Any = None


# What one run may carry, so that nothing it sends to Temporal nears the 2 MB payload limit (a request body,
# so the input, context and definition, is at most TRELLIS_MAX_BODY_BYTES, 256 KiB by default). A step whose
# output is larger fails naming its size before it is recorded; a run whose steps' outputs together pass the
# second bound fails at the step that passed it. Both are fixed, not settings: they protect Temporal's limit.
MAX_STEP_OUTPUT_BYTES = 256 * 1024
MAX_RUN_OUTPUT_BYTES = 1024 * 1024


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what a payload of it costs, before encryption)."""
    return len(json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False).encode())


class ResumeState(BaseModel):
    """What a run carries into its next run when it continues as new."""

    position: int
    variables: dict[str, Any]
    step_errors: list[StepError] = Field(default_factory=list)
    compensable: list[Compensable] = Field(default_factory=list)
    tokens_used: int = 0
    started_at: datetime
    steps_done: int = 0
    begun: bool = True  # False: a retry from a step, whose execution row the run still has to begin
    # A retry from a step: the execution it retries, and the completed steps whose records it reuses
    # (copied when the run begins, so the retry shows them however its start was interrupted).
    reused_from: str | None = None
    reused_paths: list[str] = Field(default_factory=list)
    paused: PauseInfo | None = None  # a run paused when it continued as new stays paused


class PauseChange(BaseModel):
    """An execution paused (``paused`` set) or resumed (None): written to its row."""

    execution_id: str
    paused: PauseInfo | None


class RunInput(BaseModel):
    execution_id: str
    workflow: str
    version: int
    definition: dict[str, Any]  # the stored JSON (wire spelling); parsed inside the workflow
    input: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = None
    parent_execution_id: str | None = None
    root_execution_id: str | None = None  # the top-level execution of a workflow.run tree (None: this one)
    depth: int = 0
    max_depth: int = 5
    max_spawned: int = 100  # executions this run's tree may start through workflow.run, in total
    history_limit: int = 5000
    search_attributes: bool = True
    resume: ResumeState | None = None
    dry_run: DryRunPlan | None = None  # a shadow run: every effect served from records (core/steps/dryrun.py)
    variant: VariantArm | None = None  # the experiment variant a start that named no version was routed to


class DryRunPlan(BaseModel):
    """What a dry run serves instead of calling: each path's recorded output (or recorded failure) from
    the run it shadows, and stub outputs named in the request for steps without a record."""

    recorded: dict[str, Any] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    stubs: dict[str, Any] = Field(default_factory=dict)


class DryStep(BaseModel):
    """One step of a dry run as it went: its path, status, output, and where the output came from."""

    path: str
    status: StepStatus
    output: Any = None
    error: str | None = None
    served: Literal["record", "stub", "none", "evaluated"] = "evaluated"
    taken: Literal["then", "else"] | None = None  # a branch: the arm it took (also when that arm failed)


class RunResult(BaseModel):
    execution_id: str
    status: ExecutionStatus
    output: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    step_errors: list[StepError] = Field(default_factory=list)
    dry_steps: list[DryStep] | None = None  # a dry run's steps as they went


class BeginInput(BaseModel):
    execution_id: str
    workflow: str
    version: int
    temporal_workflow_id: str
    input: dict[str, Any]
    context: dict[str, Any]
    trigger: dict[str, Any]
    created_by: str | None = None
    parent_execution_id: str | None = None
    reused_from: str | None = None  # a retry's source execution, whose records at reused_paths it copies
    reused_paths: list[str] = Field(default_factory=list)
    variant: VariantArm | None = None


class FinishInput(BaseModel):
    execution_id: str
    status: ExecutionStatus
    output: dict[str, Any] | None = None
    error: str | None = None
    step_errors: list[StepError] = Field(default_factory=list)


class StepRecordInput(BaseModel):
    """A step the interpreter records itself: skipped, failed for good, or done by a call that does not
    record its own (agent.call, workflow.run)."""

    execution_id: str
    path: str
    position: int
    name: str
    tool: str
    status: StepStatus
    input: Any = None
    output: Any = None
    error: str | None = None
    retry_count: int = 0
    started_ts: datetime | None = None


class ToolCall(BaseModel):
    """One attempt of a tool step: the resolved parameters and the key its effects are recorded under."""

    execution_id: str
    workflow: str
    path: str
    position: int
    name: str
    tool: str
    params: dict[str, Any]
    attempt: int = 1
    timeout_ms: int
    started_ts: datetime
    # http.request: header name -> secret name, for the values the definition itself wrote as
    # ``secret:<name>`` (taken from the definition, never from resolved params: data never names a secret).
    secret_headers: dict[str, str] = Field(default_factory=dict)
    # An acting agent's call (issue 25): recorded in the agent log under ``agent_key``, not as a step.
    agent: str | None = None
    agent_key: str | None = None
    agent_session: str | None = None
    approval_id: str | None = None  # an approval the policy asked for, granted for this call


class ConditionInput(BaseModel):
    expression: str
    variables: dict[str, Any]


class ConditionResult(BaseModel):
    value: bool = False
    error: str | None = None


class DefinitionRef(BaseModel):
    workflow: str
    version: int | None = None
    # A workflow.run step's child: reserved against the spawn budget of the tree's top-level execution.
    root_execution_id: str | None = None
    child_execution_id: str | None = None
    spawn_limit: int = 100


class DefinitionFound(BaseModel):
    """A stored version for a child run (workflow.run), or why there is none to run."""

    version: int = 0
    definition: dict[str, Any] = Field(default_factory=dict)
    problem: str | None = None


class WaitInput(BaseModel):
    """A wait_event step's registration (and removal) in workflow_event_waits."""

    execution_id: str
    path: str
    temporal_workflow_id: str
    source: str
    key: str


class ExternalEvent(BaseModel):
    """An event delivered to a waiting execution (the signal ``external_event``)."""

    event_id: str
    source: str
    key: str | None
    payload: dict[str, Any]
    received_ts: datetime


EXTERNAL_EVENT_SIGNAL = "external_event"


TaskKind = Literal["task", "escalation"]
TaskAction = Literal["approve", "reject", "retry", "skip", "abort"]
TASK_ACTIONS: dict[str, list[TaskAction]] = {"task": ["approve", "reject"], "escalation": ["retry", "skip", "abort"]}


class TaskOpen(BaseModel):
    """A human task the interpreter opens (local activity): its row, and a notification to the assignee."""

    task_id: str
    execution_id: str
    path: str
    workflow: str
    temporal_workflow_id: str
    kind: TaskKind
    title: str
    description: str | None = None
    assignee: str
    escalate_to: str | None = None
    form: dict[str, Any] | None = None
    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    distribute: Distribution | None = None  # shared among a role's people (core/people)
    on_behalf_of: str | None = None  # the absent person whose task a delegate holds


class TaskAssigned(BaseModel):
    """Who a task went to when it was not simply its assignee: the person distribution chose, or the
    delegate of an assignee who is out of office."""

    assignee: str
    on_behalf_of: str | None = None


class TaskChange(BaseModel):
    """A task reminded, escalated, decided, cancelled or reassigned (local activity), with its notification."""

    task_id: str
    change: Literal["reminded", "escalated", "decided", "cancelled", "reassigned"]
    ts: datetime
    decision: dict[str, Any] | None = None
    actor: str | None = None
    assignee: str | None = None  # reassigned: to whom (and for whom, when a delegate takes it)
    on_behalf_of: str | None = None
    reason: str | None = None


class TaskReassignRequest(BaseModel):
    """Give an open task to someone else (the update ``reassign_task``), recorded with who and why."""

    path: str
    to: str
    on_behalf_of: str | None = None
    actor: str
    reason: str | None = None


class TaskDecisionRequest(BaseModel):
    """A person's decision on an open task (the update ``decide_task``)."""

    path: str
    action: TaskAction
    comment: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    actor: str
    actor_role: str


class TaskOutcome(BaseModel):
    task_id: str
    path: str
    action: TaskAction
    actor: str
    comment: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    decided_ts: datetime


class TaskRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    execution_id: uuid.UUID
    path: str
    workflow_name: str
    temporal_workflow_id: str
    kind: str
    title: str
    description: str | None
    assignee: str
    on_behalf_of: str | None = None
    escalate_to: str | None
    form: dict[str, Any] | None
    actions: list[str]
    status: str
    remind_ts: datetime | None
    escalated: bool
    decision: dict[str, Any] | None
    created_ts: datetime
