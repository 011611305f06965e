"""The automation actions: each action type declares here, once, its parameters (the typed model a
rule stores and validates at save), its output, its time limit and its retry policy. The activity
that performs it is bound to this declaration in ``activities/automation/registry.py``; chains, the
worker's registration and rule validation all read the one registry.

A new action: add its params and output models and an ``ActionSpec`` here, its activity method in
``activities/automation/actions.py``, and its registry entry (see docs/adding-an-action.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from temporalio.common import RetryPolicy

from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.templating import TemplateRenderError, check_value, is_template
from core.effects.scripts import SCRIPTS
from core.platform import errors
from core.platform.contracts import RequestPart
from core.platform.tools import RetrySpec, ToolOutput, ToolSpec, fixed_limit

EntityType = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
TemplatedText = Annotated[str, Field(min_length=1, max_length=5000)]


def _templates(*values: Any) -> None:
    try:
        for value in values:
            check_value(value)
    except TemplateRenderError as exc:
        raise ValueError(str(exc)) from exc


class UpdateFieldAction(RequestPart):
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


class CreateEntityAction(RequestPart):
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


class _Message(RequestPart):
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


SECRET_PREFIX = "secret:"
SECRET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")


def authored_secrets(headers: dict[str, Any]) -> dict[str, str]:
    """The headers an admin wrote literally as ``secret:<name>`` (header name -> secret name).

    Only the authored text counts: a value that a template or a reference produces is data, sent as it is,
    even when it reads ``secret:<name>`` (data never names a secret)."""
    return {
        name: value[len(SECRET_PREFIX) :]
        for name, value in headers.items()
        if isinstance(value, str)
        and value.startswith(SECRET_PREFIX)
        and SECRET_NAME.fullmatch(value[len(SECRET_PREFIX) :])
    }


def check_http_url(url: str) -> str:
    """An outbound request's url (a webhook's, a step's http.request): absolute http(s), a valid port,
    no fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an absolute http:// or https:// URL")
    if parts.fragment:
        raise ValueError("url has no #fragment")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"url has an invalid port: {exc}") from exc
    return url


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers of an outbound request: none that Trellis sets itself, and secrets only by plain name."""
    reserved = {"host", "content-length", "connection", "transfer-encoding"}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in reserved or lowered.startswith("webhook-"):
            raise ValueError(f"header '{name}' is set by Trellis and cannot be given")
        if value.startswith(SECRET_PREFIX) and not SECRET_NAME.fullmatch(value[len(SECRET_PREFIX) :]):
            raise ValueError(f"header '{name}': a secret reference is '{SECRET_PREFIX}<name>' with a plain name")
    return headers


class CallWebhookAction(RequestPart):
    """Call a URL, signed per Standard Webhooks with the rule's secret; retried and dead-lettered.

    Only the path and query of ``url`` may be templated (each value percent-encoded). ``body`` is an
    admin-authored JSON template; without it the body is the event JSON as it is. A header value
    ``secret:<name>`` is replaced, when sending, by the secret of that name in TRELLIS_WEBHOOK_SECRETS,
    so the secret never enters the rule, an API answer or a workflow history."""

    type: Literal["call_webhook"]
    url: str = Field(min_length=8, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Annotated[str, Field(max_length=2000)]] = Field(default_factory=dict, max_length=30)
    body: Any = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        check_http_url(url)
        parts = urlsplit(url)
        if is_template(parts.netloc) or is_template(parts.scheme):
            raise ValueError(
                "the scheme, credentials, host and port of a webhook url cannot be templated (they are fixed "
                "when the rule is saved); only its path and query may be"
            )
        return url

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return check_headers(headers)

    @model_validator(mode="after")
    def _check(self) -> CallWebhookAction:
        _templates(self.url, self.headers, self.body)
        return self


class RunScriptAction(RequestPart):
    """Run a registered script (core/effects/scripts.py) on the trigger entity; its result fields are set on it."""

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


STEP_WORKFLOW_NAME = r"^[a-z][a-z0-9_]{0,99}$"


class StartWorkflowAction(RequestPart):
    """Start one execution of a step workflow (/api/v1/workflows) per event, recorded with the rule and
    event that triggered it. ``input`` and ``context`` are admin-authored JSON templates over the event
    (like create_entity's ``fields``); the execution's ``${input.…}`` references read what they render."""

    type: Literal["start_workflow"]
    workflow: str = Field(pattern=STEP_WORKFLOW_NAME, description="The step workflow's name")
    input: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> StartWorkflowAction:
        _templates(self.input, self.context)
        return self


Action = Annotated[
    UpdateFieldAction
    | CreateEntityAction
    | SendNotificationAction
    | SendEmailAction
    | CallWebhookAction
    | RunScriptAction
    | StartWorkflowAction,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- outputs


ActionOutput = ToolOutput  # the outputs of rule actions are tool outputs


class UpdateFieldOutput(ActionOutput):
    entity_id: str
    field: str
    value: Any


class CreateEntityOutput(ActionOutput):
    entity_id: str
    entity_type: str


class SendNotificationOutput(ActionOutput):
    recipients: list[str]
    subject: str


class SendEmailOutput(ActionOutput):
    to: str
    message_id: str


class CallWebhookOutput(ActionOutput):
    status: int
    webhook_id: str


class RunScriptOutput(ActionOutput):
    script_id: str
    result: dict[str, Any]


class StartWorkflowOutput(ActionOutput):
    execution_id: str
    workflow: str
    version: int


# --------------------------------------------------------------------------- the specs


def _fixed(seconds: float) -> Callable[[Any], timedelta]:
    return fixed_limit(seconds)


def _own_limit(params: Any) -> timedelta:
    """An action with its own time limit gets 10 s more per attempt for connecting and recording."""
    return timedelta(seconds=float(params.timeout_seconds) + 10)


def _action_retry(_: RetrySpec) -> RetryPolicy:
    # Short attempts, bounded retries: an attempt lost with a crashed worker is retried soon.
    return errors.retry_policy(initial=timedelta(seconds=1), maximum=timedelta(seconds=60), attempts=10)


def _webhook_retry(spec: RetrySpec) -> RetryPolicy:
    return errors.retry_policy(
        initial=timedelta(seconds=spec.initial_seconds),
        maximum=timedelta(seconds=spec.max_seconds),
        attempts=spec.max_attempts,
    )


ActionSpec = ToolSpec  # a rule action is a tool whose call carries the rule and its event


def _action(
    name: str,
    params: type[Any],
    output: type[Any],
    limit: Callable[[Any], timedelta],
    retry: Callable[[RetrySpec], RetryPolicy],
    dead_letters: bool = False,
) -> ActionSpec[Any, Any]:
    """A rule action, run as the activity ``action.<name>`` (the name its histories record)."""
    return ActionSpec(name, params, output, limit, retry, dead_letters, activity=f"action.{name}")


SPECS: dict[str, ActionSpec[Any, Any]] = {
    spec.name: spec
    for spec in (
        _action("update_field", UpdateFieldAction, UpdateFieldOutput, _fixed(15), _action_retry),
        _action("create_entity", CreateEntityAction, CreateEntityOutput, _fixed(15), _action_retry),
        _action("send_notification", SendNotificationAction, SendNotificationOutput, _fixed(15), _action_retry),
        _action("send_email", SendEmailAction, SendEmailOutput, _fixed(30), _action_retry),
        _action("call_webhook", CallWebhookAction, CallWebhookOutput, _own_limit, _webhook_retry, True),
        _action("run_script", RunScriptAction, RunScriptOutput, _own_limit, _action_retry),
        # Its activity belongs to the step-workflow domain (activities/steps/records.py), which sits above
        # automation; the chain calls it by this declaration's activity name.
        _action("start_workflow", StartWorkflowAction, StartWorkflowOutput, _fixed(30), _action_retry),
    )
}
