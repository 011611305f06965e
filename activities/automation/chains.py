"""Activities of automation: match rules to an event, claim an execution (max_executions enforced
atomically), finish it, and dead-letter a webhook that failed its last attempt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.automation.actions import build_webhook
from core.automation.conditions import ConditionError, condition_variables, evaluate
from core.automation.rules import (
    ChainInput,
    ClaimInput,
    ClaimResult,
    DeadLetterInput,
    EventRef,
    FinishInput,
    MatchResult,
    RetrySpec,
    RuleSnapshot,
    ScheduledInput,
    SkippedRule,
)
from core.automation.tables import RuleExecution, WebhookDeadLetter, WorkflowAutomation
from core.entities import store as entities
from core.entities.tables import EntityEvent
from core.platform.ids import derived_id
from core.platform.settings import Settings


def event_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "entity_id": str(row.entity_id) if row.entity_id else None,
        "entity_type": row.entity_type,
        "event_kind": row.event_kind,
        "field_name": row.field_name,
        "old_value": row.old_value,
        "new_value": row.new_value,
        "old_entity": row.old_entity,
        "new_entity": row.new_entity,
        "causation": list(row.causation or []),
        "actor": row.actor,
        "created_ts": row.created_ts.isoformat(),
    }


def rule_snapshot(row: Any) -> RuleSnapshot:
    return RuleSnapshot(
        id=str(row.id),
        workflow_name=row.workflow_name,
        trigger_action_type=row.trigger_action_type,
        action_entity_type=row.action_entity_type,
        actions=list(row.actions),
        max_executions=row.max_executions,
    )


def loop_reason(rule_id: str, event: dict[str, Any], max_depth: int) -> str | None:
    """Why a rule must not run for an event that rules caused, or None."""
    causation = event.get("causation") or []
    if len(causation) >= max_depth:
        chain = " -> ".join(c["rule_id"] for c in causation)
        return f"stopped: causation chain of {len(causation)} rules reached the limit of {max_depth} ({chain})"
    for cause in causation:
        if cause["rule_id"] == rule_id and cause.get("entity_id") == event.get("entity_id"):
            return "stopped: the rule was triggered again by its own effect on the same entity"
    return None


class AutomationActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def _retry(self) -> RetrySpec:
        return RetrySpec(
            max_attempts=self._settings.webhook_max_attempts,
            initial_seconds=self._settings.webhook_initial_retry_seconds,
            max_seconds=self._settings.webhook_max_retry_seconds,
        )

    @activity.defn(name="automation.match")
    async def match(self, ref: EventRef) -> MatchResult:
        """The seed's query (type, action, scope, active, execution_order), then conditions and loop checks."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(EntityEvent.__table__).where(EntityEvent.id == uuid.UUID(ref.event_id)))
            ).first()
            if row is None:
                return MatchResult(runs=[])
            event = event_json(row)
            rules = (
                await conn.execute(
                    select(WorkflowAutomation.__table__)
                    .where(
                        WorkflowAutomation.trigger_entity_type == event["entity_type"],
                        WorkflowAutomation.trigger_action_type == event["event_kind"],
                        or_(
                            WorkflowAutomation.trigger_scope == "all",
                            WorkflowAutomation.trigger_entity_id == row.entity_id,
                        ),
                        WorkflowAutomation.active_flag.is_(True),
                    )
                    .order_by(WorkflowAutomation.execution_order, WorkflowAutomation.created_ts)
                )
            ).all()
            runs: list[ChainInput] = []
            skipped: list[SkippedRule] = []
            variables = condition_variables(event)
            for rule in rules:
                conditions = rule.trigger_conditions or {}
                if conditions.get("field") and conditions["field"] != event["field_name"]:
                    continue
                if conditions.get("expression"):
                    try:
                        if not evaluate(conditions["expression"], variables):
                            continue
                    except ConditionError as exc:
                        skipped.append(SkippedRule(rule_id=str(rule.id), reason=str(exc)))
                        continue
                reason = loop_reason(str(rule.id), event, self._settings.automation_max_depth)
                if reason is not None:
                    skipped.append(SkippedRule(rule_id=str(rule.id), reason=reason))
                    continue
                runs.append(ChainInput(rule=rule_snapshot(rule), event=event, webhook_retry=self._retry()))
        if skipped:
            await self._record_skips(ref.event_id, skipped)
        return MatchResult(runs=runs, skipped=skipped)

    async def _record_skips(self, event_id: str, skipped: list[SkippedRule]) -> None:
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(RuleExecution)
                .values(
                    [
                        {
                            "rule_id": uuid.UUID(s.rule_id),
                            "event_id": uuid.UUID(event_id),
                            "status": "skipped",
                            "reason": s.reason,
                            "workflow_id": f"entity-event-{event_id}",
                            "started_ts": now,
                            "finished_ts": now,
                        }
                        for s in skipped
                    ]
                )
                .on_conflict_do_nothing()
            )

    @activity.defn(name="automation.scheduled_event")
    async def scheduled_event(self, data: ScheduledInput) -> MatchResult:
        """A scheduled firing as an event (not stored in the outbox): the rule's entity if 'specific'."""
        info = activity.info()
        async with self._engine.connect() as conn:
            rule = (
                await conn.execute(
                    select(WorkflowAutomation.__table__).where(WorkflowAutomation.id == uuid.UUID(data.rule_id))
                )
            ).one_or_none()
            if rule is None or not rule.active_flag:
                return MatchResult(runs=[])
            entity = await entities.load(conn, rule.trigger_entity_id) if rule.trigger_entity_id else None
        event: dict[str, Any] = {
            "id": str(derived_id("scheduled", info.workflow_id, info.workflow_run_id)),
            "entity_id": entity["id"] if entity else None,
            "entity_type": rule.trigger_entity_type,
            "event_kind": "scheduled",
            "field_name": None,
            "old_value": None,
            "new_value": None,
            "old_entity": entity,
            "new_entity": entity,
            "causation": [],
            "actor": "system:schedule",
            "created_ts": datetime.now(UTC).isoformat(),
        }
        return MatchResult(runs=[ChainInput(rule=rule_snapshot(rule), event=event, webhook_retry=self._retry())])

    @activity.defn(name="automation.claim")
    async def claim(self, data: ClaimInput) -> ClaimResult:
        """Count this run against max_executions exactly once; deactivate the rule at its limit.

        The counter update is a single conditional UPDATE, so N concurrent events can never run a rule
        more than max_executions times; the (rule, event) row makes a retried claim a no-op."""
        rule_id, event_id = uuid.UUID(data.rule_id), uuid.UUID(data.event_id)
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            inserted = (
                await conn.execute(
                    insert(RuleExecution)
                    .values(
                        rule_id=rule_id,
                        event_id=event_id,
                        workflow_id=data.workflow_id,
                        status="running",
                        started_ts=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(RuleExecution.rule_id)
                )
            ).first()
            if inserted is None:
                existing = (
                    await conn.execute(
                        select(RuleExecution.__table__).where(
                            RuleExecution.rule_id == rule_id, RuleExecution.event_id == event_id
                        )
                    )
                ).one()
                claimed = existing.status in ("running", "completed", "failed")
                return ClaimResult(claimed=claimed, execution_number=existing.execution_number, reason=existing.reason)
            table = WorkflowAutomation
            counted = (
                await conn.execute(
                    update(table)
                    .where(
                        table.id == rule_id,
                        table.active_flag.is_(True),
                        or_(table.max_executions < 0, table.execution_count < table.max_executions),
                    )
                    .values(
                        execution_count=table.execution_count + 1,
                        last_executed_ts=now,
                        active_flag=or_(table.max_executions < 0, table.execution_count + 1 < table.max_executions),
                        updated_ts=now,
                    )
                    .returning(table.execution_count)
                )
            ).first()
            if counted is None:
                reason = "skipped: the rule is inactive or has reached max_executions"
                await conn.execute(
                    update(RuleExecution)
                    .where(RuleExecution.rule_id == rule_id, RuleExecution.event_id == event_id)
                    .values(status="skipped", reason=reason, finished_ts=now)
                )
                return ClaimResult(claimed=False, reason=reason)
            await conn.execute(
                update(RuleExecution)
                .where(RuleExecution.rule_id == rule_id, RuleExecution.event_id == event_id)
                .values(execution_number=counted[0])
            )
            return ClaimResult(claimed=True, execution_number=counted[0])

    @activity.defn(name="automation.finish")
    async def finish(self, data: FinishInput) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(RuleExecution)
                .where(
                    RuleExecution.rule_id == uuid.UUID(data.rule_id), RuleExecution.event_id == uuid.UUID(data.event_id)
                )
                .values(status=data.status, reason=data.reason, finished_ts=datetime.now(UTC))
            )

    @activity.defn(name="automation.dead_letter")
    async def dead_letter(self, data: DeadLetterInput) -> str:
        """Keep the webhook that failed its last attempt, with its last status, for redelivery."""
        async with self._engine.begin() as conn:
            # Rebuilt exactly as it was sent: same rendering, same webhook-id.
            request = await build_webhook(conn, data.rule, data.event, data.action_index)
            row = (
                await conn.execute(
                    insert(WebhookDeadLetter)
                    .values(
                        webhook_id=request.webhook_id,
                        rule_id=uuid.UUID(data.rule.id),
                        event_id=uuid.UUID(data.event["id"]),
                        action_index=data.action_index,
                        url=request.url,
                        method=request.method,
                        headers=request.headers,
                        body=request.body.decode(),
                        last_status=data.last_status,
                        last_error=data.last_error[:2000],
                        attempts=data.attempts,
                    )
                    .on_conflict_do_update(
                        index_elements=[WebhookDeadLetter.webhook_id],
                        set_={
                            "last_status": data.last_status,
                            "last_error": data.last_error[:2000],
                            "attempts": data.attempts,
                        },
                    )
                    .returning(WebhookDeadLetter.id)
                )
            ).one()
        return str(row[0])
