"""What the inbox shows and what a decision carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from core.platform.contracts import RequestModel

Action = Literal[
    "approve", "reject", "start", "complete", "snooze", "skip", "escalate", "acknowledge", "retry", "abort"
]


class InboxItem(BaseModel):
    id: str = Field(description="'<kind>:<reference>', for POST /api/v1/inbox/{id}/decision")
    kind: str
    title: str
    entity_id: uuid.UUID | None
    entity_name: str | None
    assignee: list[str] = Field(description="Principal names or roles the decision is owed by")
    priority_score: int
    priority_label: str
    due_at: datetime | None
    escalated: bool
    link: str = Field(description="The thing itself, in the API")
    detail: str | None = Field(
        default=None, description="What is asked, in words: a policy approval's reason and arguments"
    )
    actions: list[Action] = Field(description="What the caller may do now")


class Verdict(RequestModel):
    """Approve or reject (approval gates, session approvals, step workflows' tasks)."""

    action: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=2000)
    fields: dict[str, Any] | None = Field(
        default=None, description="A step task's form fields (checked against its form); other items ignore them"
    )


class Progress(RequestModel):
    """Start or complete a work item."""

    action: Literal["start", "complete"]
    comment: str | None = Field(default=None, max_length=2000)
    execution_data: dict[str, Any] | None = None


class Snooze(RequestModel):
    action: Literal["snooze"]
    days: int = Field(ge=1, le=90)
    comment: str | None = Field(default=None, max_length=2000)


class Skip(RequestModel):
    action: Literal["skip"]
    reason: str = Field(min_length=1, max_length=2000)


class Escalate(RequestModel):
    action: Literal["escalate"]
    escalation_user_id: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=2000)


class Retry(RequestModel):
    """Run a failed step again (a step escalated to a person)."""

    action: Literal["retry"]
    comment: str | None = Field(default=None, max_length=2000)


class Abort(RequestModel):
    """Fail the execution at the escalated step."""

    action: Literal["abort"]
    comment: str | None = Field(default=None, max_length=2000)


class Acknowledge(RequestModel):
    """Take note of a deadline alert or an early warning."""

    action: Literal["acknowledge"]
    comment: str | None = Field(default=None, max_length=2000)


Decision = Annotated[
    Verdict | Progress | Snooze | Skip | Escalate | Acknowledge | Retry | Abort, Field(discriminator="action")
]


class DecisionOutcome(BaseModel):
    id: str
    kind: str
    action: Action
    result: dict[str, Any] = Field(description="The decided object as its own endpoint shows it")
