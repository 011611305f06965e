"""Contracts of the work queue: definitions, items, the changes people make to an item, and what the
item workflow carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.people.directory import Distribution
from core.platform.contracts import JsonUuid, RequestModel, RequestPart

WorkType = Literal["opportunity", "risk", "strategic", "renewal", "custom"]
ItemStatus = Literal["not_started", "underway", "completed", "snoozed", "skipped"]
FINAL: tuple[ItemStatus, ...] = ("completed", "skipped")


class Sla(RequestPart):
    """An item not done within ``days`` of its creation escalates to ``escalate_to``."""

    days: int = Field(ge=1, le=365)
    escalate_to: str = Field(min_length=1, max_length=200, description="A principal name or a role")


class TriggerConditions(RequestPart):
    """``order``: position in the demo sequence. ``opportunity_score_min`` / ``risk_score_min``: the
    signal interpreter creates an item when every threshold given is met (a definition without any
    threshold is never created by it). ``entity_type``: the entities it looks at (default customer).
    ``workflow_id`` / ``trigger_type``: kept as the seed stores them."""

    model_config = ConfigDict(extra="allow", strict=True)

    order: int | None = Field(default=None, ge=1, le=1000)
    opportunity_score_min: int | None = Field(default=None, ge=0, le=10)
    risk_score_min: int | None = Field(default=None, ge=0, le=10)
    entity_type: str = Field(default="customer", min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    sla: Sla | None = Field(default=None, description="Items not done in time escalate")
    distribution: Distribution | None = Field(
        default=None, description="Share new items among a role's people (round_robin, least_loaded or skill)"
    )


class DefinitionCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    workflow_type: WorkType
    description: str | None = Field(default=None, max_length=2000)
    trigger_conditions: TriggerConditions = Field(default_factory=TriggerConditions)
    priority_weight: int = Field(default=0, ge=0, le=10_000)
    is_active: bool = True
    is_demo: bool = False


class DefinitionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    workflow_type: str
    description: str | None
    trigger_conditions: dict[str, Any]
    priority_weight: int
    is_active: bool
    is_demo: bool
    created_ts: datetime
    updated_ts: datetime


class WorkItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    definition_id: uuid.UUID
    definition_name: str
    workflow_type: str
    entity_id: uuid.UUID
    entity_name: str
    assignee: str
    escalation_user_id: str | None
    on_behalf_of: str | None = Field(default=None, description="The absent person whose item a delegate holds")
    status: str
    snooze_until: datetime | None
    snooze_days: int | None
    snoozed_at: datetime | None
    priority_score: int
    priority_label: str
    started_at: datetime | None
    completed_at: datetime | None
    skipped_at: datetime | None
    escalated_at: datetime | None
    # Defaults: items recorded in workflow histories before the SLA existed still decode.
    due_at: datetime | None = Field(default=None, description="The SLA: past it, the item escalates to sla_escalate_to")
    sla_escalate_to: str | None = None
    execution_data: dict[str, Any]
    skip_reason: str | None
    is_demo: bool
    order: int | None = Field(description="Position in the demo sequence (trigger_conditions.order)")
    workflow_id: str
    created_ts: datetime


class SnoozeCreate(RequestModel):
    days: int = Field(ge=1, le=90)


class SkipCreate(RequestModel):
    reason: str = Field(min_length=1, max_length=2000)


class EscalateCreate(RequestModel):
    escalation_user_id: str = Field(min_length=1, max_length=200, description="A principal name or a role")


class StatusCreate(RequestModel):
    status: ItemStatus
    execution_data: dict[str, Any] | None = Field(default=None, description="Merged into the stored progress")


class DemoInitialize(RequestModel):
    entity_id: JsonUuid
    assignee: str | None = Field(default=None, min_length=1, max_length=200, description="Default: the caller")


class DemoStatus(BaseModel):
    total: int
    completed: int
    current: WorkItemPublic | None
    next: WorkItemPublic | None


class SignalsInput(BaseModel):
    """The interpreter's run takes nothing yet; a model so that fields can be added."""


def item_input(item: WorkItemPublic) -> WorkItemInput:
    """What a new item's workflow starts with."""
    return WorkItemInput(item_id=item.id, due_at=item.due_at, escalate_to=item.sla_escalate_to)


class InterpretResult(BaseModel):
    workflow_id: str = Field(description="The interpreter run, readable in the Temporal UI")
    entities: int = Field(description="Entities whose signals were read")
    created: list[uuid.UUID] = Field(description="Items the signals call for (new, or left unstarted by a crash)")


# ------------------------------------------------------------------ what the item workflow carries


class ItemChange(BaseModel):
    """One change a person asks of an item (an update of its workflow)."""

    action: Literal["snooze", "skip", "escalate", "status"]
    actor: str
    days: int | None = None
    reason: str | None = None
    escalation_user_id: str | None = None
    status: ItemStatus | None = None
    execution_data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> ItemChange:
        needed = {"snooze": self.days, "skip": self.reason, "escalate": self.escalation_user_id}
        if self.action in needed and needed[self.action] is None:
            raise ValueError(f"{self.action} needs its value")
        if self.action == "status" and self.status is None:
            raise ValueError("status needs a status")
        return self


class ItemWrite(BaseModel):
    """What the item workflow asks its activity to record: a change (or a rescore) at ``now``, as
    step ``version`` of the item (a retry of a recorded step records nothing)."""

    item_id: uuid.UUID
    version: int
    now: datetime
    change: ItemChange | None = None


class ItemState(BaseModel):
    """The workflow's view of its item after a write."""

    status: ItemStatus
    snooze_until: datetime | None
    version: int
    item: WorkItemPublic | None = None


class WorkItemInput(BaseModel):
    item_id: uuid.UUID
    status: ItemStatus = "not_started"
    snooze_until: datetime | None = None
    version: int = 0
    due_at: datetime | None = None
    escalate_to: str | None = None
    sla_escalated: bool = False


def allowed(status: str, change: ItemChange) -> str | None:
    """Why ``change`` cannot be made to an item in ``status``; None when it can."""
    if status in FINAL:
        return f"the item is {status}; nothing changes a {status} item"
    if change.action == "status" and change.status == "snoozed":
        return "snooze with POST …/snooze {days}, which sets when it comes back"
    if change.action == "status" and change.status == "skipped":
        return "skip with POST …/skip {reason}, which records why"
    return None
