"""Scheduled rules as Temporal Schedules (``automation-schedule-<rule id>``), created, updated, paused
and deleted together with the rule; the worker reconciles them all on start."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from core.automation import store
from core.automation.rules import ScheduledInput
from core.platform import search_attributes as sa
from workflows.automation.entity_event import ScheduledRuleWorkflow

logger = logging.getLogger(__name__)


def schedule_id(rule_id: str) -> str:
    return f"automation-schedule-{rule_id}"


def _schedule(rule: Any, task_queue: str) -> Schedule:
    rule_id = str(rule.id)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledRuleWorkflow.run,
            ScheduledInput(rule_id=rule_id),
            id=f"automation-scheduled-{rule_id}",
            task_queue=task_queue,
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.RULE_ID, rule_id),
                    SearchAttributePair(sa.TRIGGER, "scheduled"),
                    SearchAttributePair(sa.ENTITY_TYPE, rule.trigger_entity_type),
                ]
            ),
        ),
        spec=ScheduleSpec(cron_expressions=[rule.schedule_cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=not rule.active_flag, note=f"rule {rule.workflow_name}"),
    )


async def sync_schedule(client: Client, task_queue: str, rule: Any) -> None:
    """Make the rule's schedule match the rule (create, update, pause/unpause, or delete)."""
    handle = client.get_schedule_handle(schedule_id(str(rule.id)))
    if rule.trigger_action_type != "scheduled":
        await delete_schedule(client, str(rule.id))
        return
    schedule = _schedule(rule, task_queue)
    try:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        await client.create_schedule(schedule_id(str(rule.id)), schedule)


async def delete_schedule(client: Client, rule_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(rule_id)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def reconcile_schedules(client: Client, engine: AsyncEngine, task_queue: str) -> int:
    """Bring every scheduled rule's schedule in line with the database (after a crash or an outage)."""
    async with engine.connect() as conn:
        rules = await store.scheduled_rules(conn)
    for rule in rules:
        await sync_schedule(client, task_queue, rule)
    return len(rules)
