"""Automation commands: list rules (with what a reader may see of them) and their recent activity,
list dead letters, redeliver one."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import Gateway
from core.automation import store
from core.automation.rules import (
    DeadLetterPublic,
    RedeliveryInput,
    RedeliveryResult,
    RuleExecutionPublic,
    RulePublic,
    redacted_actions,
)
from core.automation.store import RuleActivity
from core.platform.contracts import Page
from workflows.automation.redelivery import WebhookRedeliveryWorkflow


def public_rule(rule: Any, principal: Principal) -> RulePublic:
    """A rule as this principal may see it: only an admin sees its signing secret and its actions'
    secret-bearing parts."""
    public = RulePublic.model_validate(rule)
    if principal.role != "admin":
        public.webhook_secret = None
        public.actions = redacted_actions(public.actions)
    return public


async def rules(
    principal: Principal,
    engine: AsyncEngine,
    *,
    trigger_entity_type: str | None = None,
    trigger_action_type: str | None = None,
    active: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
    with_activity: bool = True,
) -> tuple[Page[RulePublic], dict[uuid.UUID, RuleActivity]]:
    """A page of rules, and for each its last run and failures (an aggregate over the rules' runs,
    which the API's list does not answer, so it asks for none)."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        page = await store.rules_page(
            conn,
            trigger_entity_type=trigger_entity_type,
            trigger_action_type=trigger_action_type,
            active=active,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )
        activity = await store.rule_activity(conn, [r.id for r in page.items]) if with_activity else {}
    public: Page[RulePublic] = Page(
        items=[public_rule(r, principal) for r in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
    )
    return public, activity


async def dead_letters(
    principal: Principal,
    engine: AsyncEngine,
    *,
    rule_id: uuid.UUID | None = None,
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Page[DeadLetterPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.dead_letters_page(
            conn, rule_id=rule_id, open_only=open_only, limit=limit, offset=offset, cursor=cursor
        )


async def redeliver(
    dead_letter_id: uuid.UUID, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> RedeliveryResult:
    """Send a dead letter again with its original webhook-id and body; the receiver's answer."""
    allow(principal, "operator", doing="redeliver webhooks")
    async with engine.connect() as conn:
        if not await store.dead_letter_exists(conn, dead_letter_id):
            raise ApiError(404, "not_found", f"no dead letter {dead_letter_id}")
    return await gateway.execute(
        WebhookRedeliveryWorkflow.run,
        RedeliveryInput(dead_letter_id=str(dead_letter_id)),
        workflow_id=f"webhook-redelivery-{dead_letter_id}-{uuid.uuid4().hex[:8]}",
    )


async def rule_executions(
    rule_id: uuid.UUID,
    principal: Principal,
    engine: AsyncEngine,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[RulePublic, Page[RuleExecutionPublic]]:
    """A rule (as this principal may see it) and its executions, newest first; 404 for no such rule."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        rule = await store.get_rule(conn, rule_id)
        if rule is None:
            raise ApiError(404, "not_found", f"no automation rule {rule_id}")
        page = await store.executions_page(conn, rule_id, status=status, limit=limit, offset=offset, cursor=cursor)
    return public_rule(rule, principal), page
