"""Automation rules (seed: d_workflow_automation): contracts and save-time validation.

WHEN <trigger_entity_type> <trigger_action_type> [scope] [AND conditions] THEN <actions> in order.
Everything that can be checked before a rule runs is checked when it is saved: CEL conditions compile,
templates parse, cron expressions parse, script ids exist, message templates exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.automation.conditions import ConditionError, compile_condition
from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.scripts import SCRIPTS
from core.automation.templating import TemplateRenderError, check_template, check_value
from core.platform.contracts import RequestModel, StrictModel

EntityType = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
TriggerAction = Literal["create", "update", "delete", "status_change", "field_change", "scheduled"]
TemplatedText = Annotated[str, Field(min_length=1, max_length=5000)]


def _templates(*values: Any) -> None:
    try:
        for value in values:
            check_value(value)
    except TemplateRenderError as exc:
        raise ValueError(str(exc)) from exc


class UpdateFieldAction(StrictModel):
    """Set ``field`` ("status", "name" or a key of ``fields``) on the trigger entity, or on its parent /
    child of ``target_entity_type``. The change emits its own entity events."""

    type: Literal["update_field"]
    field: str = Field(min_length=1, max_length=100)
    value: Any
    target: Literal["trigger", "parent", "child"] = "trigger"
    target_entity_type: EntityType | None = None

    @model_validator(mode="after")
    def _check(self) -> UpdateFieldAction:
        if self.target != "trigger" and self.target_entity_type is None:
            raise ValueError(f"update_field with target '{self.target}' needs target_entity_type")
        _templates(self.value)
        return self


class CreateEntityAction(StrictModel):
    """Create an entity, linked as a child of the trigger entity (e.g. an order from an accepted quote)."""

    type: Literal["create_entity"]
    entity_type: EntityType
    name: TemplatedText = "{{entity.name}}"
    status: str | None = Field(default=None, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    link_to_trigger: bool = True

    @model_validator(mode="after")
    def _check(self) -> CreateEntityAction:
        _templates(self.name, self.status, self.fields)
        return self


class _Message(StrictModel):
    template: str = Field(min_length=1, max_length=100)
    subject: TemplatedText | None = None
    body: TemplatedText | None = None

    def _check_message(self) -> None:
        if self.template not in MESSAGE_TEMPLATES and (self.subject is None or self.body is None):
            raise ValueError(
                f"unknown message template '{self.template}'; give subject and body, or use one of: "
                + ", ".join(sorted(MESSAGE_TEMPLATES))
            )
        _templates(self.subject, self.body)


class SendNotificationAction(_Message):
    """Store a notification per recipient; read through /api/v1/notifications?recipient=…"""

    type: Literal["send_notification"]
    recipients: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _check(self) -> SendNotificationAction:
        self._check_message()
        _templates(self.recipients)
        return self


class SendEmailAction(_Message):
    """Render and send an e-mail over SMTP (TRELLIS_SMTP_*)."""

    type: Literal["send_email"]
    to: TemplatedText

    @model_validator(mode="after")
    def _check(self) -> SendEmailAction:
        self._check_message()
        _templates(self.to)
        return self


class CallWebhookAction(StrictModel):
    """Call a URL, signed per Standard Webhooks with the rule's secret; retried and dead-lettered."""

    type: Literal["call_webhook"]
    url: str = Field(min_length=8, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Annotated[str, Field(max_length=2000)]] = Field(default_factory=dict, max_length=30)
    body: Any = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http:// or https:// URL")
        if "{{" in (parts.hostname or "") or "{%" in (parts.hostname or ""):
            raise ValueError("the host of a webhook url cannot be templated")
        return url

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = {"host", "content-length", "connection", "transfer-encoding"}
        for name in headers:
            lowered = name.lower()
            if lowered in reserved or lowered.startswith("webhook-"):
                raise ValueError(f"header '{name}' is set by Trellis and cannot be given")
        return headers

    @model_validator(mode="after")
    def _check(self) -> CallWebhookAction:
        _templates(self.url, self.headers, self.body)
        return self


class RunScriptAction(StrictModel):
    """Run a registered script (core/scripts.py) on the trigger entity; its result fields are set on it."""

    type: Literal["run_script"]
    script_id: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("script_id")
    @classmethod
    def _known(cls, script_id: str) -> str:
        if script_id not in SCRIPTS:
            raise ValueError(f"unknown script '{script_id}'; registered scripts: {', '.join(sorted(SCRIPTS))}")
        return script_id


Action = Annotated[
    UpdateFieldAction
    | CreateEntityAction
    | SendNotificationAction
    | SendEmailAction
    | CallWebhookAction
    | RunScriptAction,
    Field(discriminator="type"),
]


class TriggerConditions(StrictModel):
    """``expression``: a CEL condition (core/conditions.py). ``field``: for field_change, which field."""

    expression: str | None = Field(default=None, min_length=1, max_length=2000)
    field: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("expression")
    @classmethod
    def _compiles(cls, expression: str | None) -> str | None:
        if expression is not None:
            try:
                compile_condition(expression)
            except ConditionError as exc:
                raise ValueError(str(exc)) from exc
        return expression


class RuleCreate(RequestModel):
    workflow_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger_entity_type: EntityType
    trigger_action_type: TriggerAction
    trigger_scope: Literal["all", "specific"] = "all"
    trigger_entity_id: uuid.UUID | None = None
    trigger_conditions: TriggerConditions = Field(default_factory=TriggerConditions)
    schedule_cron: str | None = Field(default=None, max_length=100, description="For 'scheduled': a cron expression")
    action_entity_type: EntityType
    actions: list[Action] = Field(min_length=1, max_length=20)
    execution_order: int = Field(default=0, ge=-10_000, le=10_000)
    max_executions: int = Field(default=-1, ge=-1, le=1_000_000_000)
    active_flag: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RuleCreate:
        if self.max_executions == 0:
            raise ValueError("max_executions must be -1 (unlimited) or at least 1")
        if (self.trigger_scope == "specific") != (self.trigger_entity_id is not None):
            raise ValueError("trigger_entity_id is required with trigger_scope 'specific', and only then")
        if self.trigger_action_type == "scheduled":
            if not self.schedule_cron:
                raise ValueError("a 'scheduled' rule needs schedule_cron, e.g. '0 9 * * 1-5'")
            if not croniter.is_valid(self.schedule_cron) or len(self.schedule_cron.split()) != 5:
                raise ValueError(f"schedule_cron '{self.schedule_cron}' is not a valid 5-field cron expression")
            for index, action in enumerate(self.actions):
                if isinstance(action, UpdateFieldAction | RunScriptAction) and self.trigger_scope != "specific":
                    raise ValueError(
                        f"actions.{index}: a scheduled rule has no trigger entity unless trigger_scope is "
                        "'specific'; give trigger_entity_id"
                    )
        elif self.schedule_cron is not None:
            raise ValueError("schedule_cron is only for trigger_action_type 'scheduled'")
        if self.trigger_conditions.field is not None and self.trigger_action_type != "field_change":
            raise ValueError("trigger_conditions.field is only for trigger_action_type 'field_change'")
        for message in (a for a in self.actions if isinstance(a, SendNotificationAction | SendEmailAction)):
            if message.template not in MESSAGE_TEMPLATES:
                continue
            try:
                for text in MESSAGE_TEMPLATES[message.template]:
                    check_template(text)
            except TemplateRenderError as exc:  # pragma: no cover - built-in templates are tested
                raise ValueError(str(exc)) from exc
        return self


class RulePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workflow_name: str
    description: str | None
    trigger_entity_type: str
    trigger_action_type: str
    trigger_scope: str
    trigger_entity_id: uuid.UUID | None
    trigger_conditions: dict[str, Any]
    schedule_cron: str | None
    action_entity_type: str
    actions: list[dict[str, Any]]
    execution_order: int
    max_executions: int
    execution_count: int
    last_executed_ts: datetime | None
    active_flag: bool
    created_ts: datetime
    updated_ts: datetime
    webhook_secret: str | None = Field(default=None, description="Shown to admins only")


class ExecutionPublic(BaseModel):
    """One rule considered for one event: completed, failed or skipped, with the reason."""

    model_config = ConfigDict(from_attributes=True)

    rule_id: uuid.UUID
    event_id: uuid.UUID
    workflow_id: str
    status: str
    reason: str | None
    execution_number: int | None
    started_ts: datetime
    finished_ts: datetime | None


class DeadLetterPublic(BaseModel):
    """A webhook that failed its last attempt (headers and body are not shown)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    webhook_id: str
    rule_id: uuid.UUID
    event_id: uuid.UUID
    action_index: int
    url: str
    method: str
    last_status: int | None
    last_error: str | None
    attempts: int
    created_ts: datetime
    redelivered_ts: datetime | None
    redelivery_status: int | None


class RuleSnapshot(BaseModel):
    """What a chain workflow carries about its rule (no secret: histories are visible in the UI)."""

    id: str
    workflow_name: str
    trigger_action_type: str
    action_entity_type: str
    actions: list[dict[str, Any]]
    max_executions: int


# --------------------------------------------------------------------------- workflow contracts


class EventRef(BaseModel):
    event_id: str


class RetrySpec(BaseModel):
    max_attempts: int
    initial_seconds: float
    max_seconds: float


class ChainInput(BaseModel):
    """One rule run for one event: ``automation-<rule id>-<event id>``."""

    rule: RuleSnapshot
    event: dict[str, Any]
    webhook_retry: RetrySpec


class SkippedRule(BaseModel):
    rule_id: str
    reason: str


class MatchResult(BaseModel):
    runs: list[ChainInput]
    skipped: list[SkippedRule] = Field(default_factory=list)


class ClaimInput(BaseModel):
    rule_id: str
    event_id: str
    workflow_id: str


class ClaimResult(BaseModel):
    claimed: bool
    execution_number: int | None = None
    reason: str | None = None


class ActionInput(BaseModel):
    rule: RuleSnapshot
    event: dict[str, Any]
    action_index: int


class ActionResult(BaseModel):
    summary: dict[str, Any] = Field(default_factory=dict)


class FinishInput(BaseModel):
    rule_id: str
    event_id: str
    status: Literal["completed", "failed"]
    reason: str | None = None


class DeadLetterInput(BaseModel):
    rule: RuleSnapshot
    event: dict[str, Any]
    action_index: int
    last_status: int | None
    last_error: str
    attempts: int


class ChainOutcome(BaseModel):
    status: Literal["completed", "failed", "skipped"]
    reason: str | None = None
    actions_done: int = 0


class ScheduledInput(BaseModel):
    rule_id: str


class RedeliveryInput(BaseModel):
    dead_letter_id: str


class RedeliveryResult(BaseModel):
    status: int | None
    error: str | None
