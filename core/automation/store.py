"""Data access of automation, for the API, the chains' activities and the dispatcher: rules, their
executions, webhook dead letters, the outbox batch the dispatcher takes, and the action ledger."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.automation import matching
from core.automation.rules import DeadLetterInput, DeadLetterPublic, RuleCreate, RuleExecutionPublic
from core.automation.tables import ActionLog, RuleExecution, WebhookDeadLetter, WorkflowAutomation
from core.effects.http import Delivery, stored_headers
from core.effects.webhook_signing import new_secret
from core.entities.tables import EntityEvent
from core.platform import direct
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


class RuleActivity(BaseModel):
    last_run: datetime | None
    runs: int
    failures: int


async def rule_activity(conn: AsyncConnection, rule_ids: list[uuid.UUID]) -> dict[uuid.UUID, RuleActivity]:
    """Per rule of a page: its last run and how many of its runs failed (the console's rule list)."""
    if not rule_ids:
        return {}
    stmt = (
        select(
            RuleExecution.rule_id,
            func.max(RuleExecution.started_ts),
            func.count(),
            func.count().filter(RuleExecution.status == "failed"),
        )
        .where(RuleExecution.rule_id.in_(rule_ids))
        .group_by(RuleExecution.rule_id)
    )
    return {
        rule_id: RuleActivity(last_run=last, runs=int(runs), failures=int(failed))
        for rule_id, last, runs, failed in (await conn.execute(stmt)).all()
    }


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
    conn: AsyncConnection,
    *,
    rule_id: uuid.UUID | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
    open_only: bool = False,
) -> Page[DeadLetterPublic]:
    stmt = select(WebhookDeadLetter.__table__)
    if rule_id is not None:
        stmt = stmt.where(WebhookDeadLetter.rule_id == rule_id)
    if open_only:
        stmt = stmt.where(_still_open())
    return await fetch_page(
        conn,
        stmt,
        order=Order(WebhookDeadLetter.created_ts, WebhookDeadLetter.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=DeadLetterPublic.model_validate,
    )


def _still_open() -> ColumnElement[bool]:
    """A dead letter nobody has redelivered, or whose redelivery was not answered with a 2xx."""
    return or_(
        WebhookDeadLetter.redelivery_status.is_(None),
        WebhookDeadLetter.redelivery_status < 200,
        WebhookDeadLetter.redelivery_status >= 300,
    )


async def open_dead_letters(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).where(_still_open()))).scalar_one())


async def dead_letter_exists(conn: AsyncConnection, dead_letter_id: uuid.UUID) -> bool:
    found = await conn.execute(select(WebhookDeadLetter.id).where(WebhookDeadLetter.id == dead_letter_id))
    return found.first() is not None


async def scheduled_rules(conn: AsyncConnection) -> list[Any]:
    """Every rule with a schedule trigger, active or not (a schedule is paused for an inactive one)."""
    query = select(WorkflowAutomation.__table__).where(WorkflowAutomation.trigger_action_type == "scheduled")
    return list((await conn.execute(query)).all())


# ------------------------------------------------------------------ what chains write


async def finish_execution(
    conn: AsyncConnection, rule_id: uuid.UUID, event_id: uuid.UUID, status: str, reason: str | None
) -> bool:
    """End a rule execution; True when this write ended it (a retry after the commit changes nothing)."""
    finished = await conn.execute(
        update(RuleExecution)
        .where(
            RuleExecution.rule_id == rule_id,
            RuleExecution.event_id == event_id,
            RuleExecution.finished_ts.is_(None),
        )
        .values(status=status, reason=reason, finished_ts=datetime.now(UTC))
    )
    return finished.rowcount == 1


async def keep_dead_letter(conn: AsyncConnection, request: Delivery, data: DeadLetterInput) -> tuple[uuid.UUID, bool]:
    """Keep a webhook that failed its last attempt, exactly as it was sent, keyed by its webhook-id: the
    dead letter's id, and whether this write inserted it (a retried write updates its own row)."""
    last_error = data.last_error[:2000]
    row: Any = (
        await conn.execute(
            upsert(WebhookDeadLetter)
            .values(
                webhook_id=request.webhook_id,
                rule_id=uuid.UUID(data.rule.id),
                event_id=uuid.UUID(data.event.id),
                action_index=data.action_index,
                url=request.url,
                method=request.method,
                headers=stored_headers(request),
                body=request.body.decode(),
                last_status=data.last_status,
                last_error=last_error,
                attempts=data.attempts,
            )
            .on_conflict_do_update(
                index_elements=[WebhookDeadLetter.webhook_id],
                set_={"last_status": data.last_status, "last_error": last_error, "attempts": data.attempts},
            )
            .returning(WebhookDeadLetter.id, literal_column("xmax = 0").label("inserted"))
        )
    ).one()
    return row[0], bool(row.inserted)


async def dead_letter_to_redeliver(conn: AsyncConnection, dead_letter_id: uuid.UUID) -> tuple[Any, str | None]:
    """A dead letter and its rule's signing secret, for sending it again byte for byte."""
    query = select(WebhookDeadLetter.__table__).where(WebhookDeadLetter.id == dead_letter_id)
    letter = (await conn.execute(query)).one()
    secret_query = select(WorkflowAutomation.webhook_secret).where(WorkflowAutomation.id == letter.rule_id)
    return letter, (await conn.execute(secret_query)).scalar_one()


async def record_redelivery(
    conn: AsyncConnection, dead_letter_id: uuid.UUID, status: int | None, error: str | None
) -> None:
    """A redelivery's answer; its error replaces the last one only when there is one."""
    values: dict[str, Any] = {"redelivered_ts": datetime.now(UTC), "redelivery_status": status}
    if error:
        values["last_error"] = error
    await conn.execute(update(WebhookDeadLetter).where(WebhookDeadLetter.id == dead_letter_id).values(**values))


# ------------------------------------------------------------------ the dispatcher's outbox batch


async def event_to_match(conn: AsyncConnection, event_id: uuid.UUID) -> Any | None:
    """One outbox event as matching reads it (``matching.event_of`` takes the row)."""
    return (await conn.execute(matching.events_query().where(EntityEvent.id == event_id))).first()


async def take_undispatched(conn: AsyncConnection, limit: int) -> list[Any]:
    """The oldest undispatched entity events, locked (others skip them) and marked dispatched in the
    caller's transaction, each with whether a run claimed for it by an earlier pass may not have started
    (``claimed_before``). The mark commits with whatever the caller does with the batch: if that fails,
    the rollback leaves the events undispatched for the next pass."""
    return await direct.fetch(conn, _undispatched_statement(), {"limit": limit})


@functools.cache
def _undispatched_statement() -> Any:
    """Built once: the dispatcher takes a batch after every entity change (issue 27). One statement
    locks and marks the batch (an UPDATE of the rows a ``FOR UPDATE SKIP LOCKED`` read picked) and
    returns it as ``matching.events_query`` reads it, instead of a locked read and a mark at the end."""
    table = cast(Table, EntityEvent.__table__)
    picked = (
        select(table.c.id)
        .where(table.c.dispatched_ts.is_(None))
        .order_by(table.c.created_ts)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    batch = (
        update(table)
        .where(table.c.id.in_(picked.scalar_subquery()))
        .values(dispatched_ts=func.now())
        .returning(*table.c)
        .cte("batch")
    )
    primary = table.alias("primary_event")
    claimed = (
        select(RuleExecution.event_id)
        .where(RuleExecution.event_id == batch.c.id, RuleExecution.status == "running")
        .exists()
    )
    return (
        select(
            *batch.c,
            primary.c.old_entity.label("primary_old_entity"),
            primary.c.new_entity.label("primary_new_entity"),
            claimed.label("claimed_before"),
        )
        .outerjoin(primary, primary.c.id == batch.c.snapshot_event_id)
        .order_by(batch.c.created_ts)
    )


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
