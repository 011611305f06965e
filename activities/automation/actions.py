"""The action registry: one activity per action type, used by every automation chain.

Each action is a thin envelope: it renders the rule's templates against the event, then applies the
effect written once in ``core/effects`` under the one exactly-once ledger (``core/effects/ledger.py``),
keyed by (rule, event, action index) and recorded as an f_action_log row. Database actions write the
row in the effect's transaction; outside effects (e-mail, webhook) check it first, write it after, and
carry a stable id (Message-ID, webhook-id) so that the rare repeat after a crash is recognisable.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.automation import store
from core.automation.actions import (
    SPECS,
    ActionOutput,
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
)
from core.automation.messages import MESSAGE_TEMPLATES
from core.automation.rendering import build_webhook, event_context, invalid, render_template
from core.automation.rules import ActionInput, RedeliveryInput, RedeliveryResult
from core.automation.store import ActionLedger
from core.automation.templating import (
    TemplateRenderError,
    render,
)
from core.effects import entities as entity_effects
from core.effects import ledger, messages
from core.effects.failures import EffectFailed
from core.effects.http import Delivery, deliver, split_stored_headers
from core.effects.ssrf import AllowList
from core.entities import store as entities
from core.entities.contracts import Cause, limits_of
from core.platform import errors, telemetry
from core.platform.ids import derived_id
from core.platform.settings import Settings
from core.policy.contracts import Action, CheckRequest, Subject
from core.policy.gate import gate

Out = TypeVar("Out", bound=ActionOutput)
P = TypeVar("P")


async def _told(name: str, work: Awaitable[Out]) -> Out:
    """``work``'s result; an effect's failure told as the action's (core/effects/failures.py): a
    transient one is retried by the action's retry policy, any other fails the action at once."""
    try:
        return await work
    except EffectFailed as failed:
        message = f"{name}: {failed.message}"
        raise (errors.EFFECT_UNAVAILABLE.error(message) if failed.retryable else invalid(message)) from failed


def _actor(data: ActionInput) -> str:
    return f"rule:{data.rule.id}"


def _causation(data: ActionInput) -> list[dict[str, Any]]:
    """The changes an action makes carry the chain that led to them, for loop detection."""
    event = data.event
    chain = [*event.causation, Cause(rule_id=data.rule.id, event_id=event.id, entity_id=event.entity_id)]
    return [c.model_dump() for c in chain]


class ActionActivities:
    """Built in worker.py with the engine and settings."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._allow = AllowList(settings.allow_list(), public=settings.webhook_public_destinations)
        self._max_chars = settings.template_max_output_chars
        self._limits = limits_of(settings)

    # ---------------------------------------------------------------- the ledger (core/effects/ledger.py)

    @staticmethod
    def _ledger(data: ActionInput) -> ActionLedger:
        return ActionLedger(data.rule.id, data.event.id, data.action_index, data.action.type)

    async def _in_transaction(self, data: ActionInput, perform: Callable[[AsyncConnection], Awaitable[Out]]) -> Out:
        output = SPECS[data.action.type].output

        async def checked(conn: AsyncConnection) -> Out:
            await self._allowed(data)
            return await _told(data.action.type, perform(conn))

        return await ledger.once_in_transaction(self._engine, self._ledger(data), output, checked)

    def _checked(self, data: ActionInput, prepare: Callable[[AsyncConnection], Awaitable[P]]) -> Any:
        """An outside action's ``prepare``, after the policy check (once the ledger found no record)."""

        async def checked(conn: AsyncConnection) -> P:
            await self._allowed(data)
            return await prepare(conn)

        return checked

    async def _allowed(self, data: ActionInput) -> None:
        """The approval policy before a rule's action (core/policy/gate.py): the rule acts as
        ``rule:<name>``; the arguments are the action as its admin wrote it, and ``entity`` the event's."""
        action = data.action
        subject = Subject(kind="workflow", name=f"rule:{data.rule.workflow_name}")
        await gate(
            self._engine,
            CheckRequest(
                subject=subject,
                action=Action(kind="rule_action", name=action.type),
                arguments=action.model_dump(mode="json"),
                entity=data.event.new_entity.model_dump(mode="json") if data.event.new_entity else None,
            ),
            key=self._ledger(data).lock_key,
            context={"rule_id": data.rule.id, "event_id": data.event.id},
            granted=data.approval_id,
            title=f"rule {data.rule.workflow_name} wants to run {action.type}",
        )

    # ---------------------------------------------------------------- database actions

    @activity.defn(name="action.update_field")
    async def update_field(self, data: ActionInput) -> UpdateFieldOutput:
        action = data.action
        assert isinstance(action, UpdateFieldAction)

        async def perform(conn: AsyncConnection) -> UpdateFieldOutput:
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
            await entity_effects.update_entity(
                conn, target, actor=_actor(data), limits=self._limits, causation=_causation(data), **change
            )
            return UpdateFieldOutput(entity_id=str(target), field=field, value=value)

        return await self._in_transaction(data, perform)

    async def _target(self, conn: AsyncConnection, data: ActionInput, action: UpdateFieldAction) -> uuid.UUID:
        trigger = data.event.entity_id
        if trigger is None:
            raise invalid("update_field: this event has no entity to update")
        if action.target == "trigger":
            return uuid.UUID(trigger)
        related = await entities.related(conn, uuid.UUID(trigger))
        side = "parents" if action.target == "parent" else "children"
        matches = [e for e in related[side] if e["entity_type"] == action.target_entity_type]
        if not matches:
            raise invalid(
                f"update_field: the trigger entity has no {action.target} of type '{action.target_entity_type}'"
            )
        return uuid.UUID(matches[0]["id"])

    @activity.defn(name="action.create_entity")
    async def create_entity(self, data: ActionInput) -> CreateEntityOutput:
        action = data.action
        assert isinstance(action, CreateEntityAction)

        async def perform(conn: AsyncConnection) -> CreateEntityOutput:
            context = await event_context(conn, data.rule, data.event)
            trigger = data.event.entity_id
            parent = (data.event.entity_type, uuid.UUID(trigger)) if trigger and action.link_to_trigger else None
            created = await entity_effects.create_entity(
                conn,
                entity_id=derived_id("action-entity", data.rule.id, data.event.id, data.action_index),
                entity_type=action.entity_type,
                name=str(render_template(action.name, context, self._max_chars)),
                status=render_template(action.status, context, self._max_chars),
                fields=render_template(action.fields, context, self._max_chars),
                actor=_actor(data),
                causation=_causation(data),
                parent=parent,
                limits=self._limits,
            )
            return CreateEntityOutput(entity_id=created["id"], entity_type=action.entity_type)

        return await self._in_transaction(data, perform)

    @activity.defn(name="action.send_notification")
    async def send_notification(self, data: ActionInput) -> SendNotificationOutput:
        action = data.action
        assert isinstance(action, SendNotificationAction)

        async def perform(conn: AsyncConnection) -> SendNotificationOutput:
            context = await event_context(conn, data.rule, data.event)
            subject, body = self._message(action, context, self._max_chars)
            recipients = [str(r) for r in render_template(action.recipients, context, self._max_chars)]
            await messages.notify(
                conn,
                recipients=recipients,
                template=action.template,
                subject=subject,
                body=body,
                dedupe_prefix=f"rule:{data.rule.id}:{data.event.id}:{data.action_index}",
                source=f"rule:{data.rule.id}",
                entity_id=uuid.UUID(data.event.entity_id) if data.event.entity_id else None,
            )
            return SendNotificationOutput(recipients=recipients, subject=subject)

        return await self._in_transaction(data, perform)

    @staticmethod
    def _message(
        action: SendNotificationAction | SendEmailAction, context: dict[str, Any], max_chars: int
    ) -> tuple[str, str]:
        default_subject, default_body = MESSAGE_TEMPLATES.get(action.template, (None, None))
        subject = action.subject or default_subject
        body = action.body or default_body
        if subject is None or body is None:
            raise invalid(f"message template '{action.template}' is unknown and the rule gives no subject/body")
        try:
            return render(subject, context, max_chars=max_chars), render(body, context, max_chars=max_chars)
        except TemplateRenderError as exc:
            raise invalid(str(exc)) from exc

    @activity.defn(name="action.run_script")
    async def run_script(self, data: ActionInput) -> RunScriptOutput:
        action = data.action
        assert isinstance(action, RunScriptAction)
        trigger = data.event.entity_id
        if trigger is None:
            raise invalid("run_script: this event has no entity to run on")

        async def perform(conn: AsyncConnection) -> RunScriptOutput:
            result = await entity_effects.run_script(
                conn,
                uuid.UUID(trigger),
                action.script_id,
                action.params,
                actor=_actor(data),
                limits=self._limits,
                timeout_seconds=action.timeout_seconds,
                causation=_causation(data),
            )
            return RunScriptOutput(script_id=action.script_id, result=result)

        return await self._in_transaction(data, perform)

    @activity.defn(name="action.redeliver_webhook")
    async def redeliver_webhook(self, data: RedeliveryInput) -> RedeliveryResult:
        """Send a dead-lettered webhook again, byte for byte, with its original webhook-id."""
        async with self._engine.connect() as conn:
            letter, secret = await store.dead_letter_to_redeliver(conn, uuid.UUID(data.dead_letter_id))
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
            await store.record_redelivery(conn, letter.id, status, error)
        return RedeliveryResult(status=status, error=error)

    # ---------------------------------------------------------------- outside effects

    @activity.defn(name="action.send_email")
    async def send_email(self, data: ActionInput) -> SendEmailOutput:
        action = data.action
        assert isinstance(action, SendEmailAction)
        message_id = f"<{derived_id('email', data.rule.id, data.event.id, data.action_index)}@trellis>"

        async def prepare(conn: AsyncConnection) -> tuple[str, str, str]:
            context = await event_context(conn, data.rule, data.event)
            subject, body = self._message(action, context, self._max_chars)
            return str(render_template(action.to, context, self._max_chars)), subject, body

        async def perform(message: tuple[str, str, str]) -> SendEmailOutput:
            to, subject, body = message
            await messages.send_email(self._settings, to=to, subject=subject, body=body, message_id=message_id)
            return SendEmailOutput(to=messages.single_address(to), message_id=message_id)

        return await ledger.once_outside(
            self._engine,
            self._ledger(data),
            SendEmailOutput,
            self._checked(data, prepare),
            lambda m: _told("send_email", perform(m)),
        )

    @activity.defn(name="action.call_webhook")
    async def call_webhook(self, data: ActionInput) -> CallWebhookOutput:
        async def prepare(conn: AsyncConnection) -> Delivery:
            return await build_webhook(conn, data.rule, data.event, data.action_index, self._max_chars)

        async def perform(delivery: Delivery) -> CallWebhookOutput:
            try:
                status = await deliver(
                    delivery,
                    self._allow,
                    secrets=self._settings.webhook_secrets,
                    max_response_bytes=self._settings.webhook_max_response_bytes,
                )
            except ApplicationError as exc:
                # Add the attempt number so a dead letter can say how often it was tried.
                raise errors.with_details(exc, attempt=activity.info().attempt) from exc
            return CallWebhookOutput(status=status, webhook_id=delivery.webhook_id)

        output = await ledger.once_outside(
            self._engine, self._ledger(data), CallWebhookOutput, self._checked(data, prepare), perform
        )
        if not output.already_done:
            labels = {"entity_type": data.event.entity_type, "outcome": "delivered"}
            telemetry.count(activity.metric_meter(), telemetry.WEBHOOK_DELIVERIES, labels)
        return output
