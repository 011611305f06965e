"""Automation rules (seed: d_workflow_automation): contracts and save-time validation.

WHEN <trigger_entity_type> <trigger_action_type> [scope] [AND conditions] THEN <actions> in order.
Everything that can be checked before a rule runs is checked when it is saved: CEL conditions compile,
templates parse, cron expressions parse, script ids exist, message templates exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.automation.actions import (
    Action,
    EntityType,
    RetrySpec,
    RunScriptAction,
    SendEmailAction,
    SendNotificationAction,
    UpdateFieldAction,
)
from core.automation.conditions import ConditionError, compile_condition
from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.templating import TemplateRenderError, check_template, compile_template, is_template
from core.entities.contracts import EntityEventData
from core.platform.contracts import JsonUuid, RequestModel, RequestPart

# external_event: an event posted to POST /api/v1/events/{source}; the rule's trigger_entity_type names the
# source, and conditions read the event as event.new_value ({key, payload}).
TriggerAction = Literal["create", "update", "delete", "status_change", "field_change", "scheduled", "external_event"]


class TriggerConditions(RequestPart):
    """``expression``: a CEL condition (core/automation/conditions.py). ``field``: for field_change, which field."""

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
    trigger_entity_id: JsonUuid | None = None
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
        if self.trigger_action_type == "external_event":
            if self.trigger_scope != "all":
                raise ValueError(
                    "an external_event rule has trigger_scope 'all': its trigger_entity_type is the source"
                )
            for index, action in enumerate(self.actions):
                if isinstance(action, UpdateFieldAction | RunScriptAction):
                    raise ValueError(f"actions.{index}: an external_event rule has no trigger entity to change")
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


class RuleExecutionPublic(BaseModel):
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
    actions: list[Action]
    max_executions: int


# --------------------------------------------------------------------------- workflow contracts


class EventRef(BaseModel):
    """An entity event to run the matching rules for. ``runs`` set: matched (and claimed) already by the
    dispatcher; unset (histories from before): the workflow matches with an activity."""

    event_id: str
    runs: list[ChainInput] | None = None


class ChainInput(BaseModel):
    """One rule run for one event: ``automation-<rule id>-<event id>``. ``claimed``: the dispatcher has
    counted it against max_executions already, so the chain does not claim again."""

    rule: RuleSnapshot
    event: EntityEventData
    webhook_retry: RetrySpec
    claimed: bool = False


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
    entity_type: str = ""  # the rule's trigger type: a metrics label


class ClaimResult(BaseModel):
    claimed: bool
    execution_number: int | None = None
    reason: str | None = None
    repeated: bool = False  # an earlier attempt made this claim (its outcome is counted already)


class ActionInput(BaseModel):
    """One action of a rule for one event; ``action`` is the typed params of ``rule.actions[index]``."""

    rule: RuleSnapshot
    event: EntityEventData
    action_index: int
    approval_id: str | None = None  # an approval the policy asked for, granted for this action (issue 25)

    @property
    def action(self) -> Any:
        return self.rule.actions[self.action_index]


class LegacyActionResult(BaseModel):
    """The untyped result actions returned before each had its output model; read only when replaying
    a history recorded then (behind ``workflow.patched``)."""

    summary: dict[str, Any] = Field(default_factory=dict)


class FinishInput(BaseModel):
    rule_id: str
    event_id: str
    status: Literal["completed", "failed"]
    reason: str | None = None
    entity_type: str = ""  # the rule's trigger type: a metrics label


class DeadLetterInput(BaseModel):
    rule: RuleSnapshot
    event: EntityEventData
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


EventRef.model_rebuild()


def templates_of(value: Any) -> list[str]:
    """Every template string inside a JSON value (a rule's actions)."""
    if isinstance(value, str):
        return [value] if is_template(value) else []
    if isinstance(value, list):
        return [t for v in value for t in templates_of(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in templates_of(v)]
    return []


def compile_templates(rule: RuleCreate) -> None:
    """Compile every template of a validated rule (the API runs this off the event loop, time-limited)."""
    for template in templates_of([a.model_dump(mode="json") for a in rule.actions]):
        compile_template(template)


REDACTED = "***"


def redacted_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Actions as non-admins see them: header values and URL credentials replaced (secret references
    name a secret, so they stay)."""
    shown = []
    for action in actions:
        action = dict(action)
        if isinstance(action.get("headers"), dict):
            action["headers"] = {
                k: (v if str(v).startswith("secret:") else REDACTED) for k, v in action["headers"].items()
            }
        if isinstance(action.get("url"), str):
            parts = urlsplit(action["url"])
            if "@" in parts.netloc:
                host = parts.netloc.rsplit("@", 1)[1]
                action["url"] = urlunsplit((parts.scheme, f"{REDACTED}@{host}", parts.path, parts.query, ""))
        shown.append(action)
    return shown
