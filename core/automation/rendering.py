"""A rule's envelope around the effects it applies: the event as a template context, the admin's
templates rendered against it, and a webhook request built from a call_webhook action. Used by the
rule actions, the chain's dead letters and the step domain's start_workflow action."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.exceptions import ApplicationError

from core.automation.actions import CallWebhookAction, authored_secrets
from core.automation.rules import RuleSnapshot
from core.automation.tables import WorkflowAutomation
from core.automation.templating import (
    DEFAULT_MAX_OUTPUT_CHARS,
    TemplateRenderError,
    build_context,
    is_template,
    render,
    render_value,
)
from core.effects.http import Delivery
from core.entities import store as entities
from core.entities.contracts import EntityEventData
from core.platform import errors
from core.platform.ids import derived_id


def invalid(message: str) -> ApplicationError:
    """A problem with the rule or the data, which no retry can fix."""
    return errors.ACTION_INVALID.error(message)


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
        raise invalid(str(exc)) from exc


def _render_url(url: str, context: dict[str, Any]) -> str:
    """Scheme, credentials, host and port as saved; the path and query rendered with every value
    percent-encoded, so a value cannot change where the request goes."""
    parts = urlsplit(url)
    try:
        path = render(parts.path, context, url=True) if is_template(parts.path) else parts.path
        query = render(parts.query, context, url=True) if is_template(parts.query) else parts.query
    except TemplateRenderError as exc:
        raise invalid(str(exc)) from exc
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
