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
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.automation.webhooks import Delivery, deliver
from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.rules import ActionInput, ActionResult, RedeliveryInput, RedeliveryResult, RuleSnapshot
from core.automation.scripts import SCRIPTS, ScriptError
from core.automation.ssrf import AllowList
from core.automation.tables import ActionLog, WebhookDeadLetter, WorkflowAutomation
from core.automation.templating import TemplateRenderError, build_context, render, render_value
from core.entities import store as entities
from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications
from core.platform import errors
from core.platform.ids import derived_id
from core.platform.settings import Settings


def _invalid(message: str) -> ApplicationError:
    """A problem with the rule or the data, which no retry can fix."""
    return ApplicationError(message, type=errors.ACTION_INVALID.type, non_retryable=True)


def _causation(data: ActionInput) -> list[dict[str, Any]]:
    """The changes an action makes carry the chain that led to them, for loop detection."""
    return [
        *data.event.get("causation", []),
        {"rule_id": data.rule.id, "event_id": data.event["id"], "entity_id": data.event.get("entity_id")},
    ]


async def _context(conn: AsyncConnection, rule: RuleSnapshot, event: dict[str, Any]) -> dict[str, Any]:
    entity = event.get("new_entity")
    related = await entities.related(conn, uuid.UUID(entity["id"])) if entity else {}
    return build_context(
        entity,
        event.get("old_entity"),
        {k: event.get(k) for k in ("id", "event_kind", "field_name", "old_value", "new_value", "actor")},
        related,
        {"id": rule.id, "name": rule.workflow_name},
    )


def _render(value: Any, context: dict[str, Any]) -> Any:
    try:
        return render_value(value, context)
    except TemplateRenderError as exc:
        raise _invalid(str(exc)) from exc


async def build_webhook(conn: AsyncConnection, rule: RuleSnapshot, event: dict[str, Any], index: int) -> Delivery:
    action = rule.actions[index]
    context = await _context(conn, rule, event)
    secret = (
        await conn.execute(select(WorkflowAutomation.webhook_secret).where(WorkflowAutomation.id == uuid.UUID(rule.id)))
    ).scalar_one()
    body_value = action.get("body")
    if body_value is None:
        body_value = {
            "type": f"{event['entity_type']}.{event['event_kind']}",
            "rule": rule.workflow_name,
            "event_id": event["id"],
            "entity": event.get("new_entity"),
        }
    body = json.dumps(_render(body_value, context), separators=(",", ":"), default=str).encode()
    return Delivery(
        url=_render(action["url"], context),
        method=action.get("method", "POST"),
        headers={k: str(v) for k, v in _render(action.get("headers", {}), context).items()},
        body=body,
        webhook_id=f"msg_{derived_id('webhook', rule.id, event['id'], index).hex}",
        secret=secret,
        timeout_seconds=float(action.get("timeout_seconds", 10.0)),
    )


class ActionActivities:
    """Built in worker.py with the engine and settings."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._allow = AllowList(settings.allow_list())

    # ---------------------------------------------------------------- bookkeeping

    @staticmethod
    def _key(data: ActionInput) -> dict[str, Any]:
        return {
            "rule_id": uuid.UUID(data.rule.id),
            "event_id": uuid.UUID(data.event["id"]),
            "action_index": data.action_index,
        }

    async def _logged(self, conn: AsyncConnection, data: ActionInput) -> ActionResult | None:
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
        return ActionResult(summary={**row[0], "already_done": True}) if row else None

    async def _log(self, conn: AsyncConnection, data: ActionInput, summary: dict[str, Any]) -> ActionResult:
        await conn.execute(
            insert(ActionLog)
            .values(
                **self._key(data),
                action_type=data.rule.actions[data.action_index]["type"],
                status="done",
                result=summary,
                finished_ts=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )
        return ActionResult(summary=summary)

    def _action(self, data: ActionInput) -> dict[str, Any]:
        return data.rule.actions[data.action_index]

    # ---------------------------------------------------------------- database actions

    @activity.defn(name="action.update_field")
    async def update_field(self, data: ActionInput) -> ActionResult:
        action = self._action(data)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await _context(conn, data.rule, data.event)
            value = _render(action["value"], context)
            target = await self._target(conn, data, action)
            field = action["field"]
            now = datetime.now(UTC)
            if field == "status":
                changed = await entities.change(
                    conn, target, status=str(value), ts=now, actor=f"rule:{data.rule.id}", causation=_causation(data)
                )
            elif field == "name":
                changed = await entities.change(
                    conn, target, name=str(value), ts=now, actor=f"rule:{data.rule.id}", causation=_causation(data)
                )
            else:
                changed = await entities.change(
                    conn,
                    target,
                    set_fields={field: value},
                    ts=now,
                    actor=f"rule:{data.rule.id}",
                    causation=_causation(data),
                )
            if changed is None:
                raise _invalid(f"update_field: entity {target} does not exist or is deleted")
            return await self._log(conn, data, {"entity_id": str(target), "field": field, "value": value})

    async def _target(self, conn: AsyncConnection, data: ActionInput, action: dict[str, Any]) -> uuid.UUID:
        trigger = data.event.get("entity_id")
        if trigger is None:
            raise _invalid("update_field: this event has no entity to update")
        if action.get("target", "trigger") == "trigger":
            return uuid.UUID(trigger)
        related = await entities.related(conn, uuid.UUID(trigger))
        side = "parents" if action["target"] == "parent" else "children"
        matches = [e for e in related[side] if e["entity_type"] == action["target_entity_type"]]
        if not matches:
            raise _invalid(
                f"update_field: the trigger entity has no {action['target']} of type '{action['target_entity_type']}'"
            )
        return uuid.UUID(matches[0]["id"])

    @activity.defn(name="action.create_entity")
    async def create_entity(self, data: ActionInput) -> ActionResult:
        action = self._action(data)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await _context(conn, data.rule, data.event)
            entity_id = derived_id("action-entity", data.rule.id, data.event["id"], data.action_index)
            trigger = data.event.get("entity_id")
            parent = (
                (data.event["entity_type"], uuid.UUID(trigger))
                if trigger and action.get("link_to_trigger", True)
                else None
            )
            created = await entities.create(
                conn,
                entity_id=entity_id,
                entity_type=action["entity_type"],
                name=str(_render(action.get("name", "{{entity.name}}"), context)),
                status=_render(action.get("status"), context),
                fields=_render(action.get("fields", {}), context),
                ts=datetime.now(UTC),
                actor=f"rule:{data.rule.id}",
                causation=_causation(data),
                parent=parent,
            )
            return await self._log(conn, data, {"entity_id": created["id"], "entity_type": action["entity_type"]})

    @activity.defn(name="action.send_notification")
    async def send_notification(self, data: ActionInput) -> ActionResult:
        action = self._action(data)
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await _context(conn, data.rule, data.event)
            subject, body = self._message(action, context)
            recipients = [str(r) for r in _render(action["recipients"], context)]
            await insert_notifications(
                conn,
                [
                    NotificationSpec(recipient=r, template=action["template"], subject=subject, body=body)
                    for r in recipients
                ],
                dedupe_prefix=f"rule:{data.rule.id}:{data.event['id']}:{data.action_index}",
                source=f"rule:{data.rule.id}",
                entity_id=uuid.UUID(data.event["entity_id"]) if data.event.get("entity_id") else None,
                ts=datetime.now(UTC),
            )
            return await self._log(conn, data, {"recipients": recipients, "subject": subject})

    @staticmethod
    def _message(action: dict[str, Any], context: dict[str, Any]) -> tuple[str, str]:
        default_subject, default_body = MESSAGE_TEMPLATES.get(action["template"], (None, None))
        subject = action.get("subject") or default_subject
        body = action.get("body") or default_body
        if subject is None or body is None:
            raise _invalid(f"message template '{action['template']}' is unknown and the rule gives no subject/body")
        try:
            return render(subject, context), render(body, context)
        except TemplateRenderError as exc:
            raise _invalid(str(exc)) from exc

    @activity.defn(name="action.run_script")
    async def run_script(self, data: ActionInput) -> ActionResult:
        action = self._action(data)
        script = SCRIPTS.get(action["script_id"])
        if script is None:
            raise _invalid(f"run_script: script '{action['script_id']}' is not registered")
        async with self._engine.begin() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            trigger = data.event.get("entity_id")
            entity = await entities.load(conn, uuid.UUID(trigger)) if trigger else None
            if entity is None:
                raise _invalid("run_script: this event has no entity to run on")
            try:
                # In a thread with a time limit, so a slow script cannot hold the worker's event loop.
                result = await asyncio.wait_for(
                    asyncio.to_thread(script, entity, dict(action.get("params", {}))),
                    timeout=float(action.get("timeout_seconds", 5.0)),
                )
            except TimeoutError as exc:
                raise _invalid(
                    f"run_script: '{action['script_id']}' exceeded its {action.get('timeout_seconds', 5.0)}s time limit"
                ) from exc
            except ScriptError as exc:
                raise _invalid(f"run_script: '{action['script_id']}' failed: {exc}") from exc
            await entities.change(
                conn,
                uuid.UUID(trigger),
                set_fields=result,
                ts=datetime.now(UTC),
                actor=f"rule:{data.rule.id}",
                causation=_causation(data),
            )
            return await self._log(conn, data, {"script_id": action["script_id"], "result": result})

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
        delivery = Delivery(
            url=letter.url,
            method=letter.method,
            headers=dict(letter.headers),
            body=letter.body.encode(),
            webhook_id=letter.webhook_id,
            secret=secret,
            timeout_seconds=10.0,
        )
        status: int | None = None
        error: str | None = None
        try:
            status = await deliver(delivery, self._allow)
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
    async def send_email(self, data: ActionInput) -> ActionResult:
        action = self._action(data)
        async with self._engine.connect() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            context = await _context(conn, data.rule, data.event)
        subject, body = self._message(action, context)
        to = str(_render(action["to"], context)).strip()
        if "@" not in to or any(c in to for c in "\r\n,;"):
            raise _invalid(f"send_email: '{to}' is not a single e-mail address")
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message_id = f"<{derived_id('email', data.rule.id, data.event['id'], data.action_index)}@trellis>"
        message["Message-ID"] = message_id
        message.set_content(body)
        await asyncio.to_thread(self._smtp_send, message)
        async with self._engine.begin() as conn:
            return await self._log(conn, data, {"to": to, "message_id": message_id})

    def _smtp_send(self, message: EmailMessage) -> None:
        settings = self._settings
        try:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _invalid(f"send_email: the SMTP server refused the recipient: {exc.recipients}") from exc
        # Other SMTP and socket errors propagate and are retried by Temporal.

    @activity.defn(name="action.call_webhook")
    async def call_webhook(self, data: ActionInput) -> ActionResult:
        async with self._engine.connect() as conn:
            if (done := await self._logged(conn, data)) is not None:
                return done
            delivery = await build_webhook(conn, data.rule, data.event, data.action_index)
        try:
            status = await deliver(delivery, self._allow)
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
            return await self._log(conn, data, {"status": status, "webhook_id": delivery.webhook_id})
