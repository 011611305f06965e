"""Contracts of industry process instances: templates, the process workflow's input, updates, queries
and activities, and the API's request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.experiments.contracts import VariantArm
from core.notifications.contracts import NotificationSpec
from core.platform.contracts import JsonUuid, RequestModel, RequestPart, Role
from core.platform.pauses import PauseInfo

# Every number a template carries is bounded when it is saved: instances compute timers and deadlines from
# them, and one out of range (1e15 days) would fail every instance's workflow task.
StateId = Annotated[int, Field(ge=0, le=100_000)]
MAX_DURATION_DAYS = 3650


class ApprovalGate(RequestPart):
    """Leaving the state needs an approval by one of ``roles``.

    After ``timeout_seconds`` without an approval the instance either escalates (records it and
    notifies ``escalate_to``; approvers can still decide) or takes ``default_to_state_id``.
    A rejection moves to ``reject_to_state_id`` when declared; otherwise the gate stays closed until
    an approver approves.
    """

    roles: list[Role] = Field(default_factory=lambda: list[Role](["approver"]), min_length=1)
    timeout_seconds: int | None = Field(default=None, gt=0, le=365 * 24 * 3600)
    on_timeout: Literal["escalate", "default_path"] = "escalate"
    default_to_state_id: StateId | None = None
    reject_to_state_id: StateId | None = None
    escalate_to: list[str] = Field(default_factory=list, max_length=50)


class StateNode(RequestPart):
    """One state of an industry DAG, in the seed's JSON shape (plus an optional approval gate)."""

    id: StateId
    name: str = Field(min_length=1, max_length=100)
    descr: str = Field(default="", max_length=2000)
    parent_ids: list[StateId] = Field(default_factory=list, max_length=200)
    child_ids: list[StateId] = Field(default_factory=list, max_length=200)
    entity_name: str | None = Field(default=None, min_length=1, max_length=100)
    entity_status: str | None = Field(default=None, min_length=1, max_length=100)
    terminal_flag: bool = False
    success: bool | None = None
    avg_duration_days: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_DAYS,
        description="How long an instance is expected to stay (deadline alerts, analytics); at most 10 years",
    )
    approval: ApprovalGate | None = None


class WorkflowGraph(RequestPart):
    workflow_version: str = Field(default="1.0", max_length=20)
    states: list[StateNode] = Field(min_length=1, max_length=200)
    owner_role: Role = Field(
        default="operator",
        description="Who is alerted (a notification and an inbox item) when an instance stays in a state "
        "longer than that state's avg_duration_days",
    )
    sla_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_DAYS,
        description="An instance's deadline, in days from its start: forecasts give the chance to meet it",
    )
    at_risk_below: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Early warning: when an instance's chance to meet sla_days falls below this, the owner "
        "role gets an inbox item before the deadline passes",
    )

    @model_validator(mode="after")
    def _warning_needs_deadline(self) -> WorkflowGraph:
        if self.at_risk_below is not None and self.sla_days is None:
            raise ValueError("at_risk_below warns about missing sla_days: set sla_days too")
        return self


class TemplateCreate(RequestModel):
    code: str = Field(min_length=1, max_length=50, pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str = Field(min_length=1, max_length=200)
    industry_sector: str = Field(min_length=1, max_length=100)
    workflow_graph: WorkflowGraph
    default_workflow_flag: bool = False
    avg_duration_days: int | None = Field(default=None, ge=0, le=MAX_DURATION_DAYS)


class TemplatePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    version: int
    name: str
    industry_sector: str
    workflow_graph: WorkflowGraph
    active_workflow_flag: bool
    default_workflow_flag: bool
    avg_duration_days: float | None = Field(
        description="The author's estimate until an instance finishes; then the mean duration of finished ones"
    )
    success_rate_pct: float | None = Field(description="Percent of finished instances that succeeded")
    finished_count: int = Field(description="Finished instances the two figures above are over")
    succeeded_count: int
    created_ts: datetime


class TemplateSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    version: int
    name: str
    industry_sector: str
    state_count: int
    active_workflow_flag: bool
    default_workflow_flag: bool
    created_ts: datetime


class TemplateVersion(BaseModel):
    """One stored version of a template, and how many instances are still running on it."""

    version: int
    name: str
    active_workflow_flag: bool
    created_by: str | None
    created_ts: datetime
    state_count: int
    running: int


class EntityInput(RequestPart):
    """A business entity to create with an instance (the start state's entity)."""

    name: str = Field(min_length=1, max_length=300)
    fields: dict[str, Any] = Field(default_factory=dict)


class CreatedEntity(BaseModel):
    state_id: int
    entity: str
    id: str
    action: Literal["created", "updated"]
    status: str | None = None


class HistoryEntry(BaseModel):
    from_: int | None = Field(default=None, alias="from")
    to: int
    ts: datetime
    actor: str
    comment: str | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class TemplateSnapshot(BaseModel):
    """The template version an instance is pinned to, carried in the workflow input."""

    head_id: str
    code: str
    version: int
    name: str
    industry_sector: str
    graph: WorkflowGraph


class ProcessStartInput(BaseModel):
    instance_id: str
    template: TemplateSnapshot
    root_entity_id: str | None = None
    root_entity_type: str | None = None
    root_entity_name: str | None = None
    entity: EntityInput | None = None
    actor: str
    started_ts: datetime
    search_attributes: bool = True
    names_in_temporal: bool = True  # false: the root's name stays out of the run's details
    variant: VariantArm | None = None


class TransitionRequest(BaseModel):
    to_state_id: int
    comment: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    actor: str
    actor_role: Role


class DecisionRequest(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = None
    actor: str
    actor_role: Role


class ApprovalDecision(BaseModel):
    decision: Literal["approve", "reject"]
    actor: str
    comment: str | None
    ts: datetime


class PendingApproval(BaseModel):
    state_id: int
    status: Literal["pending", "rejected", "approved"]
    roles: list[Role]
    requested_ts: datetime
    timeout_at: datetime | None
    escalated: bool = False
    # Once escalated, these (principal names or roles, the gate's escalate_to) may decide too.
    escalated_to: list[str] = Field(default_factory=list)
    decisions: list[ApprovalDecision] = Field(default_factory=list)

    def deciders(self) -> list[str]:
        """Who may decide now: the gate's roles, and its escalation targets once escalated."""
        return [*self.roles, *(self.escalated_to if self.escalated else [])]


class StateRef(BaseModel):
    id: int
    name: str
    entity_name: str | None = None
    entity_status: str | None = None
    terminal_flag: bool = False

    @classmethod
    def of(cls, state: StateNode) -> StateRef:
        return cls(
            id=state.id,
            name=state.name,
            entity_name=state.entity_name,
            entity_status=state.entity_status,
            terminal_flag=state.terminal_flag,
        )


class InstanceView(BaseModel):
    """What `GET /workflow-instance/{id}` answers, from the workflow or from the database."""

    instance_id: str
    workflow_id: str
    template_code: str
    template_version: int
    workflow_head_id: str
    root_entity_id: str | None
    current_state: StateRef
    allowed_next_states: list[StateRef]
    pending_approval: PendingApproval | None
    state_history: list[HistoryEntry]
    created_entities: list[CreatedEntity]
    workflow_status: str
    success: bool | None
    started_ts: datetime
    completed_ts: datetime | None
    source: Literal["workflow", "database"]
    paused: PauseInfo | None = None
    variant: str | None = Field(default=None, description="The experiment variant it was routed to at its start")


class InstanceEvent(BaseModel):
    """One row of an instance's audit trail (GET /workflow-instance/{id}/events)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int = Field(description="The step that wrote it; the events of one step share it")
    event_type: str
    from_state_id: int | None
    to_state_id: int | None
    trigger_entity_id: uuid.UUID | None
    created_entity_id: uuid.UUID | None
    event_ts: datetime
    actor: str | None
    comment: str | None
    payload: dict[str, Any]


class ProcessOutcome(BaseModel):
    instance_id: str
    final_state_id: int
    success: bool


class TemplateRef(BaseModel):
    """Which template version a row belongs to: what a state entry needs of the pinned template."""

    head_id: str
    code: str
    version: int


class EnterStateInput(BaseModel):
    """What one state entry writes, in one transaction, keyed for idempotency by ``seq``.

    It carries the step, not the instance's whole past: the projection appends ``history_entry`` and
    ``created_entity`` to its lists, guarded by ``seq``, so the payload stays small however long the
    instance runs."""

    instance_id: str
    workflow_id: str
    template: TemplateRef
    seq: int
    ts: datetime
    actor: str
    comment: str | None
    from_state_id: int | None
    to_state: StateNode
    entity_id: str | None
    entity_action: Literal["created", "updated"] | None
    entity_name: str | None
    entity_fields: dict[str, Any]
    root_entity_id: str | None
    root_entity_type: str | None
    history_entry: HistoryEntry
    created_entity: CreatedEntity | None
    workflow_status: str
    success: bool | None
    pending_approval: PendingApproval | None
    started_ts: datetime
    variant: VariantArm | None = None  # recorded on the projection when it is first written


class EnterStateResult(BaseModel):
    entity_id: str | None


class ApprovalRecordInput(BaseModel):
    """An approval event (requested / granted / rejected / escalated / timed out) and its notices."""

    instance_id: str
    seq: int
    event_type: str
    state_id: int
    ts: datetime
    actor: str
    comment: str | None
    pending_approval: PendingApproval | None
    notifications: list[NotificationSpec] = Field(default_factory=list)
    workflow_status: str | None = None  # set when the event ends the instance (cancelled)
    payload: dict[str, Any] = Field(default_factory=dict)
    pause_change: bool = False  # the event pauses or resumes the instance: ``paused`` is written
    paused: PauseInfo | None = None


class InstanceCreate(RequestModel):
    """Start an instance: give a new root entity, or the id of an existing one (or neither)."""

    template_code: str = Field(min_length=1, max_length=50)
    template_version: int | None = Field(default=None, ge=1, le=1_000_000, description="Default: the latest version")
    entity: EntityInput | None = None
    root_entity_id: JsonUuid | None = None

    @model_validator(mode="after")
    def _one_root(self) -> InstanceCreate:
        if self.entity is not None and self.root_entity_id is not None:
            raise ValueError("give either 'entity' (a new root entity) or 'root_entity_id', not both")
        return self


class TransitionCreate(RequestModel):
    to_state_id: int = Field(ge=0, le=100_000)
    comment: str | None = Field(default=None, max_length=2000)
    fields: dict[str, Any] = Field(default_factory=dict, description="Fields for the new state's entity")


class AcknowledgeRequest(BaseModel):
    """Someone of the template's owner role takes note of a deadline alert (an update)."""

    actor: str
    actor_role: Role
    comment: str | None = None


class CancelRequest(BaseModel):
    """Someone ends an active instance where it stands (an update)."""

    actor: str
    actor_role: Role
    comment: str | None = None


class CancelCreate(RequestModel):
    comment: str | None = Field(default=None, max_length=2000, description="Why the instance is cancelled")


class AcknowledgeCreate(RequestModel):
    comment: str | None = Field(default=None, max_length=2000)


class DecisionCreate(RequestModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=2000)


MAX_BULK = 500  # instances one bulk pause or resume acts on; call again for more


class BulkPauseCreate(RequestModel):
    """Pause or resume every active instance of a template (optionally only in some states)."""

    action: Literal["pause", "resume"]
    template_code: str = Field(min_length=1, max_length=50)
    state_ids: list[StateId] | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class BulkRefusal(BaseModel):
    instance_id: str
    code: str
    message: str


class BulkPauseResult(BaseModel):
    action: Literal["pause", "resume"]
    changed: list[str] = Field(default_factory=list, description="Instances paused (or resumed) by this call")
    refused: list[BulkRefusal] = Field(default_factory=list)
    more: bool = Field(default=False, description=f"More than {MAX_BULK} matched: call again for the rest")
