"""Data access of automation for the API: rules, their executions, and webhook dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.automation.rules import DeadLetterPublic, RuleCreate, RuleExecutionPublic
from core.automation.tables import ActionLog, RuleExecution, WebhookDeadLetter, WorkflowAutomation
from core.effects.webhook_signing import new_secret
from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page


def _columns(body: RuleCreate) -> dict[str, Any]:
    return {
        **body.model_dump(include=_PLAIN_FIELDS),
        "trigger_conditions": body.trigger_conditions.model_dump(exclude_none=True),
        "actions": [a.model_dump(mode="json") for a in body.actions],
    }


_PLAIN_FIELDS = {
    "workflow_name",
    "description",
    "trigger_entity_type",
    "trigger_action_type",
    "trigger_scope",
    "trigger_entity_id",
    "schedule_cron",
    "action_entity_type",
    "execution_order",
    "max_executions",
    "active_flag",
}


async def get_rule(conn: AsyncConnection, rule_id: uuid.UUID) -> Any | None:
    return (await conn.execute(select(WorkflowAutomation.__table__).where(WorkflowAutomation.id == rule_id))).first()


async def create_rule(conn: AsyncConnection, body: RuleCreate, *, created_by: str) -> Any:
    rule_id = uuid.uuid4()
    await conn.execute(
        insert(WorkflowAutomation).values(
            id=rule_id, webhook_secret=new_secret(), created_by=created_by, **_columns(body)
        )
    )
    return await get_rule(conn, rule_id)


async def replace_rule(conn: AsyncConnection, rule_id: uuid.UUID, body: RuleCreate) -> Any | None:
    """Replace the definition; counters, secret and history stay."""
    await conn.execute(
        update(WorkflowAutomation)
        .where(WorkflowAutomation.id == rule_id)
        .values(updated_ts=datetime.now(UTC), **_columns(body))
    )
    return await get_rule(conn, rule_id)


async def deactivate_rule(conn: AsyncConnection, rule_id: uuid.UUID) -> Any | None:
    await conn.execute(
        update(WorkflowAutomation)
        .where(WorkflowAutomation.id == rule_id)
        .values(active_flag=False, updated_ts=datetime.now(UTC))
    )
    return await get_rule(conn, rule_id)


async def purge_rule(conn: AsyncConnection, rule_id: uuid.UUID) -> None:
    await conn.execute(delete(WorkflowAutomation).where(WorkflowAutomation.id == rule_id))


async def rules_page(
    conn: AsyncConnection,
    *,
    trigger_entity_type: str | None,
    trigger_action_type: str | None,
    active: bool | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> Page[Any]:
    """Rule rows (the caller decides what each reader may see of them)."""
    stmt = select(WorkflowAutomation.__table__)
    if trigger_entity_type is not None:
        stmt = stmt.where(WorkflowAutomation.trigger_entity_type == trigger_entity_type)
    if trigger_action_type is not None:
        stmt = stmt.where(WorkflowAutomation.trigger_action_type == trigger_action_type)
    if active is not None:
        stmt = stmt.where(WorkflowAutomation.active_flag.is_(active))
    return await fetch_page(
        conn,
        stmt,
        order=Order(WorkflowAutomation.execution_order, WorkflowAutomation.created_ts, WorkflowAutomation.id),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=lambda row: row,
    )


async def executions_page(
    conn: AsyncConnection,
    rule_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> Page[RuleExecutionPublic]:
    stmt = select(RuleExecution.__table__).where(RuleExecution.rule_id == rule_id)
    if status is not None:
        stmt = stmt.where(RuleExecution.status == status)
    return await fetch_page(
        conn,
        stmt,
        order=Order(RuleExecution.started_ts, RuleExecution.event_id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=RuleExecutionPublic.model_validate,
    )


async def dead_letters_page(
    conn: AsyncConnection, *, rule_id: uuid.UUID | None, limit: int, offset: int, cursor: str | None = None
) -> Page[DeadLetterPublic]:
    stmt = select(WebhookDeadLetter.__table__)
    if rule_id is not None:
        stmt = stmt.where(WebhookDeadLetter.rule_id == rule_id)
    return await fetch_page(
        conn,
        stmt,
        order=Order(WebhookDeadLetter.created_ts, WebhookDeadLetter.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=DeadLetterPublic.model_validate,
    )


async def dead_letter_exists(conn: AsyncConnection, dead_letter_id: uuid.UUID) -> bool:
    found = await conn.execute(select(WebhookDeadLetter.id).where(WebhookDeadLetter.id == dead_letter_id))
    return found.first() is not None


# ------------------------------------------------------------------ the action ledger


class ActionLedger:
    """Where a rule action's effect is recorded (core/effects/ledger.py): one f_action_log row per
    (rule, event, action index), the same row a retried attempt finds."""

    def __init__(self, rule_id: str, event_id: str, action_index: int, action_type: str) -> None:
        self._rule_id = uuid.UUID(rule_id)
        self._event_id = uuid.UUID(event_id)
        self._action_index = action_index
        self._action_type = action_type

    @property
    def lock_key(self) -> str:
        return f"rule:{self._rule_id}:{self._event_id}:{self._action_index}"

    async def recorded(self, conn: AsyncConnection) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(ActionLog.result).where(
                    ActionLog.rule_id == self._rule_id,
                    ActionLog.event_id == self._event_id,
                    ActionLog.action_index == self._action_index,
                )
            )
        ).first()
        return None if row is None else dict(row[0])

    async def record(self, conn: AsyncConnection, output: dict[str, Any]) -> None:
        await conn.execute(
            upsert(ActionLog)
            .values(
                rule_id=self._rule_id,
                event_id=self._event_id,
                action_index=self._action_index,
                action_type=self._action_type,
                status="done",
                result=output,
                finished_ts=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )
