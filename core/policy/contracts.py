"""The one approval policy (issue 25): who or what acts, on what, under which condition, and whether it
may go ahead (``allow``), may not (``deny``) or waits for people (``require_approval``, with the
approval's obligations). The same policies are checked before an agent's tool call, a step tool call,
a process transition and a rule's action; docs/concepts/policies.md has the format with examples.

Policies are admin-authored: their conditions are CEL (core/platform/cel.py), bounded and compiled
when saved. What is checked against them (tool arguments, transition fields, entity fields) is data:
it is only ever a CEL variable.
"""

from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.people.directory import Distribution
from core.platform.cel import ConditionError, compile_condition
from core.platform.contracts import RequestModel, RequestPart, Role

Effect = Literal["allow", "deny", "require_approval"]
ActionKind = Literal["tool", "transition", "rule_action"]
SubjectKind = Literal["agent", "workflow", "role", "person"]
# What a decision came to: at once (allowed, denied) or once people decided (approved, rejected, expired).
Outcome = Literal["allowed", "denied", "pending", "approved", "rejected", "expired", "cancelled"]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "cancelled"]

POLICY_NAME = r"^[a-z][a-z0-9_\-]{0,99}$"
Name = Annotated[str, Field(min_length=1, max_length=200)]
Pattern = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:*\-]+$")]
# An agent's or a workflow's name, or a pattern of them (a rule acts as "rule:<its name>", spaces and all).
SubjectPattern = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")]
MAX_ARGUMENTS_BYTES = 16_000  # what a decision row keeps of the arguments


class Subjects(RequestPart):
    """Who or what acts; a policy applies when any list names the actor (every list empty: anyone).
    ``agents`` and ``workflows`` take ``*`` patterns (``sales_*``)."""

    agents: list[SubjectPattern] = Field(default_factory=list, max_length=50)
    workflows: list[SubjectPattern] = Field(default_factory=list, max_length=50)
    roles: list[Name] = Field(default_factory=list, max_length=50, description="API roles or directory roles")
    people: list[Name] = Field(default_factory=list, max_length=200)

    def empty(self) -> bool:
        return not (self.agents or self.workflows or self.roles or self.people)


class Target(RequestPart):
    """On what: tools by name or pattern (``http.request``, ``files.*`` for an MCP server's tools); a
    template's transitions into some states (ids or names; none: any state); rule actions by type."""

    kind: ActionKind
    tools: list[Pattern] = Field(default_factory=list, max_length=50)
    template_code: str | None = Field(default=None, min_length=1, max_length=50)
    to_states: list[int | Name] = Field(default_factory=list, max_length=100)
    actions: list[Pattern] = Field(default_factory=list, max_length=50, description="Rule action types")

    @model_validator(mode="after")
    def _fits_kind(self) -> Target:
        if self.kind == "tool" and not self.tools:
            raise ValueError("a tool policy names its tools (names or patterns such as 'files.*')")
        if self.kind == "transition" and self.template_code is None:
            raise ValueError("a transition policy names its template_code")
        if self.kind == "rule_action" and not self.actions:
            raise ValueError("a rule_action policy names its action types (e.g. 'webhook')")
        return self


class Approvers(RequestPart):
    people: list[Name] = Field(default_factory=list, max_length=200)
    roles: list[Name] = Field(default_factory=list, max_length=50)


class Escalation(RequestPart):
    """After ``after_seconds`` without a decision, ``to`` (people or roles) are told and may decide too."""

    after_seconds: int = Field(ge=1, le=90 * 24 * 3600)
    to: list[Name] = Field(min_length=1, max_length=50)


class Obligations(RequestPart):
    """What an approval requires: who may approve, how many distinct people, whether the requester is
    excluded (separation of duties, also through delegation), by when, and who is told when it is late.
    With ``distribution``, the approval is not offered to a whole role: ``count`` people of the pool are
    chosen when it is asked (round robin, least loaded, by skill; out-of-office members replaced by their
    delegates), and only they (and any named ``approvers.people``) may approve."""

    approvers: Approvers
    count: int = Field(default=1, ge=1, le=10)
    distribution: Distribution | None = None
    separation_of_duties: bool = True
    deadline_seconds: int = Field(default=7 * 24 * 3600, ge=1, le=90 * 24 * 3600)
    escalation: Escalation | None = None

    @model_validator(mode="after")
    def _someone(self) -> Obligations:
        if self.distribution is not None and self.distribution.pool not in self.approvers.roles:
            raise ValueError("distribution.pool must be one of approvers.roles (the role whose members share it)")
        if not (self.approvers.people or self.approvers.roles):
            raise ValueError("an approval names who may approve (approvers.people or approvers.roles)")
        if self.escalation is not None and self.escalation.after_seconds >= self.deadline_seconds:
            raise ValueError("the escalation must come before the deadline (after_seconds < deadline_seconds)")
        return self


class PolicyBody(RequestModel):
    """A policy as PUT /api/v1/policies/{name} saves it (a new version each time)."""

    description: str | None = Field(default=None, max_length=2000)
    subjects: Subjects = Field(default_factory=Subjects)
    target: Target
    condition: str | None = Field(
        default=None,
        max_length=2000,
        description="CEL over `args` (tool arguments, or a transition's fields), `entity` (a transition's root "
        "entity), `subject` {kind, name, role} and `target` {kind, name, template_code, to_state_id, to_state_name}",
    )
    effect: Effect
    approval: Obligations | None = None
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower first; deny still overrides")
    enabled: bool = True

    @field_validator("condition")
    @classmethod
    def _compiles(cls, condition: str | None) -> str | None:
        if condition is not None:
            try:
                compile_condition(condition)
            except ConditionError as exc:
                raise ValueError(f"condition: {exc}") from exc
        return condition

    @model_validator(mode="after")
    def _approval(self) -> PolicyBody:
        if self.effect == "require_approval" and self.approval is None:
            raise ValueError("effect require_approval needs its approval obligations (approval: {approvers, …})")
        if self.effect != "require_approval" and self.approval is not None:
            raise ValueError(f"effect {self.effect} takes no approval obligations")
        return self


class PolicyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    version: int
    body: PolicyBody
    enabled: bool
    updated_by: str
    updated_ts: datetime


class PolicyVersionPublic(BaseModel):
    name: str
    version: int
    change: str
    body: dict[str, Any] | None
    actor: str
    ts: datetime


class Policy(BaseModel):
    """A saved policy as evaluation reads it."""

    name: str
    version: int
    body: PolicyBody


# --------------------------------------------------------------------------- what is checked


class Subject(BaseModel):
    kind: SubjectKind
    name: str
    role: str | None = None  # a person's API role
    roles: list[str] = Field(default_factory=list)  # a person's directory roles


class Action(BaseModel):
    kind: ActionKind
    name: str  # the tool, the rule action type, or "<template>:<to state>"
    template_code: str | None = None
    to_state_id: int | None = None
    to_state_name: str | None = None


class CheckRequest(BaseModel):
    subject: Subject
    action: Action
    arguments: dict[str, Any] = Field(default_factory=dict)
    entity: dict[str, Any] | None = None


class PolicyDecision(BaseModel):
    """What the policies say about one request; ``policy`` is None when none applied (allowed)."""

    effect: Effect
    policy: str | None = None
    version: int | None = None
    reason: str
    approval: Obligations | None = None


class DecisionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ts: datetime
    subject_kind: str
    subject: str
    action_kind: str
    target: str
    arguments: dict[str, Any]
    effect: str
    policy_name: str | None
    policy_version: int | None
    reason: str
    outcome: str
    approval_id: uuid.UUID | None
    decided_by: list[str] | None
    decided_ts: datetime | None
    context: dict[str, Any]


class EvaluateRequest(RequestModel):
    """Ask what the policies would decide, changing nothing."""

    subject_kind: SubjectKind
    subject: Name
    role: str | None = Field(default=None, max_length=50)
    action_kind: ActionKind
    target: Name = Field(description="A tool's or rule action's name, or a transition's template code")
    to_state: int | Name | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    entity: dict[str, Any] | None = None


# --------------------------------------------------------------------------- approvals


class Vote(BaseModel):
    actor: str
    role: str
    roles: list[str] = Field(default_factory=list)  # the voter's directory roles (core/people)
    decision: Literal["approve", "reject"]
    comment: str | None = None
    on_behalf_of: list[str] = Field(default_factory=list)  # people the actor stands in for (out of office)
    ts: datetime | None = None


class VoteCreate(RequestModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=2000)


PERFORM_TRANSITION = "approval.perform_transition"  # the process domain's activity (activities/process)


class TransitionToPerform(BaseModel):
    """A transition the approval performs once approved (the API's PUT …/transition that asked)."""

    instance_id: str
    to_state_id: int
    comment: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    actor: str
    actor_role: Role


class ApprovalInput(BaseModel):
    approval_id: str
    title: str
    requester: str
    subject: Subject
    action: Action
    arguments: dict[str, Any]
    policy: str
    version: int
    reason: str
    obligations: Obligations
    context: dict[str, Any] = Field(default_factory=dict)
    perform: TransitionToPerform | None = None


class ApprovalState(BaseModel):
    status: ApprovalStatus = "pending"
    votes: list[Vote] = Field(default_factory=list)
    escalated: bool = False
    message: str | None = None
    performed: dict[str, Any] | None = None


class ApprovalOutcome(BaseModel):
    approval_id: str
    status: ApprovalStatus
    decided_by: list[str]
    message: str | None = None


class ApprovalPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workflow_id: str
    status: str
    title: str
    requester: str
    subject_kind: str
    subject: str
    action_kind: str
    target: str
    arguments: dict[str, Any]
    policy_name: str
    policy_version: int
    reason: str
    approvers: dict[str, Any]
    required: int
    separation_of_duties: bool
    votes: list[dict[str, Any]]
    escalated: bool
    escalate_to: list[str]
    deadline_ts: datetime
    escalate_ts: datetime | None
    created_ts: datetime
    decided_ts: datetime | None
    message: str | None
    context: dict[str, Any]


class ApprovalRecord(BaseModel):
    """What the approval workflow writes of itself (its row, and the decision's outcome)."""

    input: ApprovalInput
    state: ApprovalState
    created_ts: datetime
    deadline_ts: datetime
    escalate_ts: datetime | None


def deciders(people: list[str], roles: list[str], escalate_to: list[str], escalated: bool) -> tuple[set[str], set[str]]:
    """Who may decide an approval now, as (people, roles): its approvers, and its escalation targets
    (people or roles) once it has escalated. The approval's workflow and the inbox both ask here."""
    if not escalated:
        return set(people), set(roles)
    return set(people) | set(escalate_to), set(roles) | set(escalate_to)


def matches(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)
