"""Automation rules (seed: /api/v1/workflow-automation), their executions, notifications' inboxes and
dead-lettered webhooks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import delete, insert, select, update

from api.deps import Admin, EngineDep, Operator, Principal, Reader, SettingsDep, TemporalDep
from api.errors import ApiError
from api.pagination import Limit, Offset, page_of
from core.db import Notification, RuleExecution, WebhookDeadLetter, WorkflowAutomation
from core.models import NotificationPublic, Page
from core.rules import RedeliveryInput, RedeliveryResult, RuleCreate, RulePublic
from core.schedules import delete_schedule, sync_schedule
from core.webhook_signing import new_secret
from workflows.webhook_redelivery import WebhookRedeliveryWorkflow

router = APIRouter(tags=["automation"])
RULES = "/api/v1/workflow-automation"


def _public(rule: Any, principal: Principal) -> RulePublic:
    return RulePublic(
        id=str(rule.id),
        workflow_name=rule.workflow_name,
        description=rule.description,
        trigger_entity_type=rule.trigger_entity_type,
        trigger_action_type=rule.trigger_action_type,
        trigger_scope=rule.trigger_scope,
        trigger_entity_id=str(rule.trigger_entity_id) if rule.trigger_entity_id else None,
        trigger_conditions=rule.trigger_conditions,
        schedule_cron=rule.schedule_cron,
        action_entity_type=rule.action_entity_type,
        actions=rule.actions,
        execution_order=rule.execution_order,
        max_executions=rule.max_executions,
        execution_count=rule.execution_count,
        last_executed_ts=rule.last_executed_ts,
        active_flag=rule.active_flag,
        created_ts=rule.created_ts,
        updated_ts=rule.updated_ts,
        webhook_secret=rule.webhook_secret if principal.role == "admin" else None,
    )


def _columns(body: RuleCreate) -> dict[str, Any]:
    return {
        "workflow_name": body.workflow_name,
        "description": body.description,
        "trigger_entity_type": body.trigger_entity_type,
        "trigger_action_type": body.trigger_action_type,
        "trigger_scope": body.trigger_scope,
        "trigger_entity_id": body.trigger_entity_id,
        "trigger_conditions": body.trigger_conditions.model_dump(exclude_none=True),
        "schedule_cron": body.schedule_cron,
        "action_entity_type": body.action_entity_type,
        "actions": [a.model_dump(mode="json") for a in body.actions],
        "execution_order": body.execution_order,
        "max_executions": body.max_executions,
        "active_flag": body.active_flag,
    }


async def _load(engine: EngineDep, rule_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        rule = (
            await conn.execute(select(WorkflowAutomation.__table__).where(WorkflowAutomation.id == rule_id))
        ).one_or_none()
    if rule is None:
        raise ApiError(404, "not_found", f"no automation rule {rule_id}")
    return rule


async def _sync(temporal: TemporalDep, settings: SettingsDep, rule: Any) -> None:
    try:
        await sync_schedule(temporal, settings.task_queue, rule)
    except Exception as exc:
        raise ApiError(
            503,
            "schedule_not_synced",
            f"the rule was saved but its schedule could not be updated ({exc}); the worker reconciles "
            "schedules when it starts, or save the rule again",
        ) from exc


@router.get(RULES, response_model=Page[RulePublic])
async def list_rules(
    engine: EngineDep,
    principal: Reader,
    trigger_entity_type: str | None = None,
    trigger_action_type: str | None = None,
    active: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RulePublic]:
    stmt = select(WorkflowAutomation.__table__)
    if trigger_entity_type is not None:
        stmt = stmt.where(WorkflowAutomation.trigger_entity_type == trigger_entity_type)
    if trigger_action_type is not None:
        stmt = stmt.where(WorkflowAutomation.trigger_action_type == trigger_action_type)
    if active is not None:
        stmt = stmt.where(WorkflowAutomation.active_flag.is_(active))
    return await page_of(
        engine,
        stmt,
        order_by=[WorkflowAutomation.execution_order, WorkflowAutomation.created_ts],
        limit=limit,
        offset=offset,
        item=lambda r: _public(r, principal),
    )


@router.post(RULES, response_model=RulePublic, status_code=201)
async def create_rule(
    body: RuleCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep, principal: Admin
) -> RulePublic:
    async with engine.begin() as conn:
        rule = (
            await conn.execute(
                insert(WorkflowAutomation)
                .values(id=uuid.uuid4(), webhook_secret=new_secret(), created_by=principal.name, **_columns(body))
                .returning(WorkflowAutomation.id)
            )
        ).scalar_one()
    stored = await _load(engine, rule)
    if stored.trigger_action_type == "scheduled":
        await _sync(temporal, settings, stored)
    return _public(stored, principal)


@router.get(RULES + "/{rule_id}", response_model=RulePublic)
async def get_rule(rule_id: uuid.UUID, engine: EngineDep, principal: Reader) -> RulePublic:
    return _public(await _load(engine, rule_id), principal)


@router.put(RULES + "/{rule_id}", response_model=RulePublic)
async def replace_rule(
    rule_id: uuid.UUID,
    body: RuleCreate,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: Admin,
) -> RulePublic:
    """Replace the rule's definition; its counters, secret and history stay."""
    before = await _load(engine, rule_id)
    async with engine.begin() as conn:
        await conn.execute(
            update(WorkflowAutomation)
            .where(WorkflowAutomation.id == rule_id)
            .values(updated_ts=datetime.now(UTC), **_columns(body))
        )
    stored = await _load(engine, rule_id)
    if "scheduled" in (before.trigger_action_type, stored.trigger_action_type):
        await _sync(temporal, settings, stored)
    return _public(stored, principal)


@router.delete(RULES + "/{rule_id}", response_model=RulePublic | None)
async def deactivate_rule(
    rule_id: uuid.UUID,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: Admin,
    purge: Annotated[bool, Query(description="Delete the rule and its schedule instead of deactivating")] = False,
) -> RulePublic | None:
    """Deactivate (the seed's DELETE); a scheduled rule's schedule is paused. ``purge`` deletes it."""
    await _load(engine, rule_id)
    async with engine.begin() as conn:
        if purge:
            await conn.execute(delete(WorkflowAutomation).where(WorkflowAutomation.id == rule_id))
        else:
            await conn.execute(
                update(WorkflowAutomation)
                .where(WorkflowAutomation.id == rule_id)
                .values(active_flag=False, updated_ts=datetime.now(UTC))
            )
    if purge:
        await delete_schedule(temporal, str(rule_id))
        return None
    stored = await _load(engine, rule_id)
    if stored.trigger_action_type == "scheduled":
        await _sync(temporal, settings, stored)
    return _public(stored, principal)


class ExecutionPublic(BaseModel):
    rule_id: str
    event_id: str
    workflow_id: str
    status: str
    reason: str | None
    execution_number: int | None
    started_ts: datetime
    finished_ts: datetime | None


@router.get(RULES + "/{rule_id}/executions", response_model=Page[ExecutionPublic])
async def list_executions(
    rule_id: uuid.UUID,
    engine: EngineDep,
    _: Reader,
    status: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExecutionPublic]:
    stmt = select(RuleExecution.__table__).where(RuleExecution.rule_id == rule_id)
    if status is not None:
        stmt = stmt.where(RuleExecution.status == status)
    return await page_of(
        engine,
        stmt,
        order_by=[RuleExecution.started_ts.desc()],
        limit=limit,
        offset=offset,
        item=lambda r: ExecutionPublic(
            rule_id=str(r.rule_id),
            event_id=str(r.event_id),
            workflow_id=r.workflow_id,
            status=r.status,
            reason=r.reason,
            execution_number=r.execution_number,
            started_ts=r.started_ts,
            finished_ts=r.finished_ts,
        ),
    )


# --------------------------------------------------------------------------- notifications


@router.get("/api/v1/notifications", response_model=Page[NotificationPublic])
async def inbox(
    engine: EngineDep,
    _: Reader,
    recipient: Annotated[str, Query(min_length=1, max_length=300)],
    unread: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[NotificationPublic]:
    """One recipient's inbox, newest first."""
    stmt = select(Notification.__table__).where(Notification.recipient == recipient)
    if unread:
        stmt = stmt.where(Notification.read_ts.is_(None))
    return await page_of(
        engine,
        stmt,
        order_by=[Notification.created_ts.desc(), Notification.id],
        limit=limit,
        offset=offset,
        item=lambda r: _notification(r),
    )


def _notification(row: Any) -> NotificationPublic:
    return NotificationPublic(
        id=str(row.id),
        recipient=row.recipient,
        template=row.template,
        subject=row.subject,
        body=row.body,
        source=row.source,
        entity_id=str(row.entity_id) if row.entity_id else None,
        created_ts=row.created_ts,
        read_ts=row.read_ts,
    )


@router.post("/api/v1/notifications/{notification_id}/read", response_model=NotificationPublic)
async def mark_read(notification_id: uuid.UUID, engine: EngineDep, _: Reader) -> NotificationPublic:
    """Mark as read (idempotent: the first read time is kept)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.read_ts.is_(None))
            .values(read_ts=datetime.now(UTC))
        )
        row = (
            await conn.execute(select(Notification.__table__).where(Notification.id == notification_id))
        ).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"no notification {notification_id}")
    return _notification(row)


# --------------------------------------------------------------------------- dead letters


class DeadLetterPublic(BaseModel):
    id: str
    webhook_id: str
    rule_id: str
    event_id: str
    action_index: int
    url: str
    method: str
    last_status: int | None
    last_error: str | None
    attempts: int
    created_ts: datetime
    redelivered_ts: datetime | None
    redelivery_status: int | None


@router.get("/api/v1/webhook-dead-letters", response_model=Page[DeadLetterPublic])
async def list_dead_letters(
    engine: EngineDep,
    _: Reader,
    rule_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeadLetterPublic]:
    stmt = select(WebhookDeadLetter.__table__)
    if rule_id is not None:
        stmt = stmt.where(WebhookDeadLetter.rule_id == rule_id)
    return await page_of(
        engine,
        stmt,
        order_by=[WebhookDeadLetter.created_ts.desc()],
        limit=limit,
        offset=offset,
        item=lambda r: DeadLetterPublic(
            id=str(r.id),
            webhook_id=r.webhook_id,
            rule_id=str(r.rule_id),
            event_id=str(r.event_id),
            action_index=r.action_index,
            url=r.url,
            method=r.method,
            last_status=r.last_status,
            last_error=r.last_error,
            attempts=r.attempts,
            created_ts=r.created_ts,
            redelivered_ts=r.redelivered_ts,
            redelivery_status=r.redelivery_status,
        ),
    )


@router.post("/api/v1/webhook-dead-letters/{dead_letter_id}/redeliver", response_model=RedeliveryResult)
async def redeliver(
    dead_letter_id: uuid.UUID, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep, _: Operator
) -> RedeliveryResult:
    """Send the webhook again with its original webhook-id and body; answers with the receiver's status."""
    async with engine.connect() as conn:
        found = (await conn.execute(select(WebhookDeadLetter.id).where(WebhookDeadLetter.id == dead_letter_id))).first()
    if found is None:
        raise ApiError(404, "not_found", f"no dead letter {dead_letter_id}")
    return await temporal.execute_workflow(
        WebhookRedeliveryWorkflow.run,
        RedeliveryInput(dead_letter_id=str(dead_letter_id)),
        id=f"webhook-redelivery-{dead_letter_id}-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue,
    )
