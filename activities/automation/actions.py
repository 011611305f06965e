"""The action registry: one activity per action type, used by every automation chain.

Each action is keyed by (rule, event, action index). Actions that only write to the database do it
in one transaction with their f_action_log row, so they apply exactly once. Actions with an outside
effect (e-mail, webhook) check the log first and write it after the effect, and carry a stable id
(Message-ID, webhook-id) so that the rare repeat after a crash is recognisable by the receiver.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.automation.webhooks import Delivery, deliver, split_stored_headers
from core.automation.actions import (
    SPECS,
    ActionOutput,
    CallWebhookAction,
    CallWebhookOutput,
    CreateEntityAction,
    CreateEntityOutput,
    RunScriptAction,
    RunScriptOutput,
    SendEmailAction,
    SendEmailOutput,
    SendNotificationAction,
    SendNotificationOutput,
    UpdateFieldAction,
    UpdateFieldOutput,
    authored_secrets,
)
from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.rules import ActionInput, RedeliveryInput, RedeliveryResult, RuleSnapshot
from core.automation.scripts import SCRIPTS, ScriptError
from core.automation.ssrf import AllowList
from core.automation.tables import ActionLog, WebhookDeadLetter, WorkflowAutomation
from core.automation.templating import (
    DEFAULT_MAX_OUTPUT_CHARS,
    TemplateRenderError,
    build_context,
    is_template,
    render,
    render_value,
)
from core.entities import store as entities
from core.entities.contracts import Cause, EntityEventData, limits_of
from core.notifications.contracts import NotificationSpec
from core.notifications.mail import send_mail
from core.notifications.store import insert_notifications
from core.platform import errors, telemetry
from core.platform.ids import derived_id
from core.platform.settings import Settings

Out = TypeVar("Out", bound=ActionOutput)


def _invalid(message: str) -> ApplicationError:
    """A problem with the rule or the data, which no retry can fix."""
    return ApplicationError(message, type=errors.ACTION_INVALID.type, non_retryable=True)


def _causation(data: ActionInput) -> list[dict[str, Any]]:
    """The changes an action makes carry the chain that led to them, for loop detection."""
    event = data.event
    chain = [*event.causation, Cause(rule_id=data.rule.id, event_id=event.id, entity_id=event.entity_id)]
    return [c.model_dump() for c in chain]


async def event_context(conn: AsyncConnection, rule: RuleSnapshot, event: EntityEventData) -> dict[str, Any]:
    entity = event.new_entity.model_dump() if event.new_entity else None
    old = event.old_entity.model_dump() if event.old_entity else None
    related = await entities.related(conn, uuid.UUID(entity["id"])) if entity else {}
    return build_context(
        entity,
        old,
        event.model_dump(mode="json", include={"id", "event_kind", "field_name", "old_value", "new_value", "actor"}),
        related,
        {"id": rule.id, "name": rule.workflow_name},
    )


def render_template(value: Any, context: dict[str, Any], max_chars: int = DEFAULT_MAX_OUTPUT_CHARS) -> Any:
    try:
        return render_value(value, context, max_chars=max_chars)
    except TemplateRenderError as exc:
        raise _invalid(str(exc)) from exc


def _render_url(url: str, context: dict[str, Any]) -> str:
    """Scheme, credentials, host and port as saved; the path and query rendered with every value
    percent-encoded, so a value cannot change where the request goes."""
    parts = urlsplit(url)
    try:
        path = render(parts.path, context, url=True) if is_template(parts.path) else parts.path
        query = render(parts.query, context, url=True) if is_template(parts.query) else parts.query
    except TemplateRenderError as exc:
        raise _invalid(str(exc)) from exc
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


async def build_webhook(
    conn: AsyncConnection,
    rule: RuleSnapshot,
    event: EntityEventData,
    index: int,
    max_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> Delivery:
    action = rule.actions[index]
    assert isinstance(action, CallWebhookAction)
    context = await event_context(conn, rule, event)
    secret = (
        await conn.execute(select(WorkflowAutomation.webhook_secret).where(WorkflowAutomation.id == uuid.UUID(rule.id)))
    ).scalar_one()
    # The admin's body is a template; without one the body is the event JSON as it is, never rendered.
    rendered = (
        render_template(action.body, context, max_chars) if action.body is not None else event.model_dump(mode="json")
    )
    body = json.dumps(rendered, separators=(",", ":"), default=str).encode()
    # A header the admin wrote as secret:<name> names a secret; every other header is a template whose
    # output is sent as it is, even when an entity's value makes it read "secret:<name>".
    secret_headers = authored_secrets(action.headers)
    plain = {k: v for k, v in action.headers.items() if k not in secret_headers}
    return Delivery(
        url=_render_url(action.url, context),
        method=action.method,
        headers={k: str(v) for k, v in render_template(plain, context, max_chars).items()},
        body=body,
        webhook_id=f"msg_{derived_id('webhook', rule.id, event.id, index).hex}",
        secret=secret,
        timeout_seconds=action.timeout_seconds,
        secret_headers=secret_headers,
    )


class ActionActivities:
    """Built in worker.py with the engine and settings."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._allow = AllowList(settings.allow_list(), public=settings.webhook_public_destinations)
        self._max_chars = settings.template_max_output_chars
        self._limits = limits_of(settings)

    # ---------------------------------------------------------------- bookkeeping

    @staticmethod
    def _key(data: ActionInput) -> dict[str, Any]:
        return {
            "rule_id": uuid.UUID(data.rule.id),
            "event_id": uuid.UUID(data.event.id),
            "action_index": data.action_index,
        }

    async def _logged(self, conn: AsyncConnection, data: ActionInput) -> Any:
        """The recorded output of this action if an earlier attempt completed it, else None."""
        key = self._key(data)
        row = (
            await conn.execute(
                select(ActionLog.result).where(
                    ActionLog.rule_id == key["rule_id"],
                    ActionLog.event_id == key["event_id"],
                    ActionLog.action_index == key["action_index"],
                )
            )
        ).first()
        if row is None:
            return None
        output = SPECS[data.action.type].output
        return output.model_validate({**row[0], "already_done": True})

    async def _log(self, conn: AsyncConnection, data: ActionInput, output: Out) -> Out:
        logged = await conn.execute(
            insert(ActionLog)
            .values(
                **self._key(data),
                action_type=data.action.type,
                status="done",
                result=output.model_dump(mode="json", exclude={"already_done"}),
                finished_ts=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
            .returning(ActionLog.action_index)
        )
        if logged.first() is not None and data.action.type == "call_webhook":  # not a retry's second write
            labels = {"entity_type": data.event.entity_type, "outcome": "delivered"}
            telemetry.count(activity.metric_meter(), telemetry.WEBHOOK_DELIVERIES, labels)
        return output

    # ---------------------------------------------------------------- database actions

    @activity.defn(name="action.update_field")
    async def update_field(self, data: ActionInput) -> UpdateFieldOutput:
        action = data.action
        assert isinstance(action, UpdateFieldAction)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await event_context(conn, data.rule, data.event)
            value = render_template(action.value, context, self._max_chars)
            target = await self._target(conn, data, action)
            field = action.field
            change: dict[str, Any] = (
                {"status": str(value)}
                if field == "status"
                else {"name": str(value)}
                if field == "name"
                else {"set_fields": {field: value}}
            )
            changed = await entities.change(
                conn,
                target,
                ts=datetime.now(UTC),
                actor=f"rule:{data.rule.id}",
                causation=_causation(data),
                limits=self._limits,
                **change,
            )
            if changed is None:
                raise _invalid(f"update_field: entity {target} does not exist or is deleted")
            return await self._log(conn, data, UpdateFieldOutput(entity_id=str(target), field=field, value=value))

    async def _target(self, conn: AsyncConnection, data: ActionInput, action: UpdateFieldAction) -> uuid.UUID:
        trigger = data.event.entity_id
        if trigger is None:
            raise _invalid("update_field: this event has no entity to update")
        if action.target == "trigger":
            return uuid.UUID(trigger)
        related = await entities.related(conn, uuid.UUID(trigger))
        side = "parents" if action.target == "parent" else "children"
        matches = [e for e in related[side] if e["entity_type"] == action.target_entity_type]
        if not matches:
            raise _invalid(
                f"update_field: the trigger entity has no {action.target} of type '{action.target_entity_type}'"
            )
        return uuid.UUID(matches[0]["id"])

    @activity.defn(name="action.create_entity")
    async def create_entity(self, data: ActionInput) -> CreateEntityOutput:
        action = data.action
        assert isinstance(action, CreateEntityAction)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await event_context(conn, data.rule, data.event)
            entity_id = derived_id("action-entity", data.rule.id, data.event.id, data.action_index)
            trigger = data.event.entity_id
            parent = (data.event.entity_type, uuid.UUID(trigger)) if trigger and action.link_to_trigger else None
            created = await entities.create(
                conn,
                entity_id=entity_id,
                entity_type=action.entity_type,
                name=str(render_template(action.name, context, self._max_chars)),
                status=render_template(action.status, context, self._max_chars),
                fields=render_template(action.fields, context, self._max_chars),
                ts=datetime.now(UTC),
                actor=f"rule:{data.rule.id}",
                causation=_causation(data),
                parent=parent,
                limits=self._limits,
            )
            output = CreateEntityOutput(entity_id=created["id"], entity_type=action.entity_type)
            return await self._log(conn, data, output)

    @activity.defn(name="action.send_notification")
    async def send_notification(self, data: ActionInput) -> SendNotificationOutput:
        action = data.action
        assert isinstance(action, SendNotificationAction)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await event_context(conn, data.rule, data.event)
            subject, body = self._message(action, context, self._max_chars)
            recipients = [str(r) for r in render_template(action.recipients, context, self._max_chars)]
            await insert_notifications(
                conn,
                [
                    NotificationSpec(recipient=r, template=action.template, subject=subject, body=body)
                    for r in recipients
                ],
                dedupe_prefix=f"rule:{data.rule.id}:{data.event.id}:{data.action_index}",
                source=f"rule:{data.rule.id}",
                entity_id=uuid.UUID(data.event.entity_id) if data.event.entity_id else None,
                ts=datetime.now(UTC),
            )
            output = SendNotificationOutput(recipients=recipients, subject=subject)
            return await self._log(conn, data, output)

    @staticmethod
    def _message(
        action: SendNotificationAction | SendEmailAction, context: dict[str, Any], max_chars: int
    ) -> tuple[str, str]:
        default_subject, default_body = MESSAGE_TEMPLATES.get(action.template, (None, None))
        subject = action.subject or default_subject
        body = action.body or default_body
        if subject is None or body is None:
            raise _invalid(f"message template '{action.template}' is unknown and the rule gives no subject/body")
        try:
            return render(subject, context, max_chars=max_chars), render(body, context, max_chars=max_chars)
        except TemplateRenderError as exc:
            raise _invalid(str(exc)) from exc

    @activity.defn(name="action.run_script")
    async def run_script(self, data: ActionInput) -> RunScriptOutput:
        action = data.action
        assert isinstance(action, RunScriptAction)
        script = SCRIPTS.get(action.script_id)
        if script is None:
            raise _invalid(f"run_script: script '{action.script_id}' is not registered")
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            trigger = data.event.entity_id
            entity = await entities.load(conn, uuid.UUID(trigger)) if trigger else None
            if entity is None or trigger is None:
                raise _invalid("run_script: this event has no entity to run on")
            try:
                # In a thread with a time limit, so a slow script cannot hold the worker's event loop.
                result = await asyncio.wait_for(
                    asyncio.to_thread(script, entity, dict(action.params)), timeout=action.timeout_seconds
                )
            except TimeoutError as exc:
                raise _invalid(
                    f"run_script: '{action.script_id}' exceeded its {action.timeout_seconds}s time limit"
                ) from exc
            except ScriptError as exc:
                raise _invalid(f"run_script: '{action.script_id}' failed: {exc}") from exc
            await entities.change(
                conn,
                uuid.UUID(trigger),
                set_fields=result,
                ts=datetime.now(UTC),
                actor=f"rule:{data.rule.id}",
                causation=_causation(data),
                limits=self._limits,
            )
            output = RunScriptOutput(script_id=action.script_id, result=result)
            return await self._log(conn, data, output)

    @activity.defn(name="action.redeliver_webhook")
    async def redeliver_webhook(self, data: RedeliveryInput) -> RedeliveryResult:
        """Send a dead-lettered webhook again, byte for byte, with its original webhook-id."""
        async with self._engine.connect() as conn:
            letter = (
                await conn.execute(
                    select(WebhookDeadLetter.__table__).where(WebhookDeadLetter.id == uuid.UUID(data.dead_letter_id))
                )
            ).one()
            secret = (
                await conn.execute(
                    select(WorkflowAutomation.webhook_secret).where(WorkflowAutomation.id == letter.rule_id)
                )
            ).scalar_one()
        plain, secret_headers = split_stored_headers(letter.headers)
        delivery = Delivery(
            url=letter.url,
            method=letter.method,
            headers=plain,
            body=letter.body.encode(),
            webhook_id=letter.webhook_id,
            secret=secret,
            timeout_seconds=10.0,
            secret_headers=secret_headers,
        )
        status: int | None = None
        error: str | None = None
        try:
            status = await deliver(
                delivery,
                self._allow,
                secrets=self._settings.webhook_secrets,
                max_response_bytes=self._settings.webhook_max_response_bytes,
            )
        except ApplicationError as exc:
            details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
            status, error = details.get("status"), exc.message
        async with self._engine.begin() as conn:
            await conn.execute(
                update(WebhookDeadLetter)
                .where(WebhookDeadLetter.id == letter.id)
                .values(
                    redelivered_ts=datetime.now(UTC),
                    redelivery_status=status,
                    last_error=error if error else letter.last_error,
                )
            )
        return RedeliveryResult(status=status, error=error)

    # ---------------------------------------------------------------- outside effects

    @activity.defn(name="action.send_email")
    async def send_email(self, data: ActionInput) -> SendEmailOutput:
        action = data.action
        assert isinstance(action, SendEmailAction)
        async with self._engine.connect() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await event_context(conn, data.rule, data.event)
        subject, body = self._message(action, context, self._max_chars)
        to = str(render_template(action.to, context, self._max_chars)).strip()
        if "@" not in to or any(c in to for c in "\r\n,;"):
            raise _invalid(f"send_email: '{to}' is not a single e-mail address")
        message_id = f"<{derived_id('email', data.rule.id, data.event.id, data.action_index)}@trellis>"
        try:
            await send_mail(self._settings, to=to, subject=subject, body=body, message_id=message_id)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _invalid(f"send_email: the SMTP server refused the recipient: {exc.recipients}") from exc
        # Other SMTP and socket errors propagate and are retried by Temporal.
        async with self._engine.begin() as conn:
            return await self._log(conn, data, SendEmailOutput(to=to, message_id=message_id))

    @activity.defn(name="action.call_webhook")
    async def call_webhook(self, data: ActionInput) -> CallWebhookOutput:
        async with self._engine.connect() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            delivery = await build_webhook(conn, data.rule, data.event, data.action_index, self._max_chars)
        try:
            status = await deliver(
                delivery,
                self._allow,
                secrets=self._settings.webhook_secrets,
                max_response_bytes=self._settings.webhook_max_response_bytes,
            )
        except ApplicationError as exc:
            # Add the attempt number so a dead letter can say how often it was tried.
            details = dict(exc.details[0]) if exc.details and isinstance(exc.details[0], dict) else {}
            raise ApplicationError(
                exc.message,
                {**details, "attempt": activity.info().attempt},
                type=exc.type,
                non_retryable=exc.non_retryable,
                next_retry_delay=exc.next_retry_delay,
            ) from exc
        async with self._engine.begin() as conn:
            output = CallWebhookOutput(status=status, webhook_id=delivery.webhook_id)
            return await self._log(conn, data, output)
