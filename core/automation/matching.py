"""Which rules an entity event runs, and the claim that counts a run against ``max_executions``.

Used by the outbox dispatcher (matching and claiming in the dispatch transaction, so the common
event reaches its first action with no workflow in between) and by the activities that replay older
histories and run scheduled rules.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Text, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from core.automation.conditions import ConditionError, condition_variables
from core.automation.evaluator import ConditionEvaluator
from core.automation.rules import ClaimResult, RuleSnapshot, SkippedRule
from core.automation.tables import RuleExecution, WorkflowAutomation
from core.entities.contracts import EntityEventData
from core.entities.tables import EntityEvent
from core.platform import direct

_PRIMARY = aliased(EntityEvent, name="primary_event")


def events_query() -> Select[Any]:
    """Outbox rows with the snapshots of their change's primary row (field and status changes carry
    none of their own); read with ``event_of``."""
    return select(
        EntityEvent.__table__,
        _PRIMARY.old_entity.label("primary_old_entity"),
        _PRIMARY.new_entity.label("primary_new_entity"),
    ).outerjoin(_PRIMARY, _PRIMARY.id == EntityEvent.snapshot_event_id)


def event_of(row: Any) -> EntityEventData:
    """An f_entity_event row (from ``events_query``) as the typed event."""
    shared = getattr(row, "snapshot_event_id", None) is not None
    return EntityEventData(
        id=str(row.id),
        entity_id=str(row.entity_id) if row.entity_id else None,
        entity_type=row.entity_type,
        event_kind=row.event_kind,
        field_name=row.field_name,
        old_value=row.old_value,
        new_value=row.new_value,
        old_entity=row.primary_old_entity if shared else row.old_entity,
        new_entity=row.primary_new_entity if shared else row.new_entity,
        causation=list(row.causation or []),
        actor=row.actor,
        created_ts=row.created_ts,
    )


def rule_snapshot(row: Any) -> RuleSnapshot:
    return RuleSnapshot(
        id=str(row.id),
        workflow_name=row.workflow_name,
        trigger_action_type=row.trigger_action_type,
        action_entity_type=row.action_entity_type,
        actions=list(row.actions),
        max_executions=row.max_executions,
    )


def loop_reason(rule_id: str, event: EntityEventData, max_depth: int) -> str | None:
    """Why a rule must not run for an event that rules caused, or None."""
    causation = event.causation
    if len(causation) >= max_depth:
        chain = " -> ".join(c.rule_id for c in causation)
        return f"stopped: causation chain of {len(causation)} rules reached the limit of {max_depth} ({chain})"
    for cause in causation:
        if cause.rule_id == rule_id and cause.entity_id == event.entity_id:
            return "stopped: the rule was triggered again by its own effect on the same entity"
    return None


async def candidate_rules(
    conn: AsyncConnection, triggers: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[Any]]:
    """The active rules of each (entity type, event kind), in execution_order: one query for a batch."""
    wanted = sorted(set(triggers))
    if not wanted:
        return {}
    rows = await direct.fetch(
        conn, _candidates_statement(), {"types": [t for t, _ in wanted], "kinds": [k for _, k in wanted]}
    )
    found: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        found.setdefault((row.trigger_entity_type, row.trigger_action_type), []).append(row)
    return found


@functools.cache
def _candidates_statement() -> Any:
    """``candidate_rules``' query, built once: the dispatcher asks it for every batch (issue 27). The
    wanted (entity type, event kind) pairs come as two arrays, zipped by ``unnest``."""
    wanted = (
        func.unnest(bindparam("types", type_=ARRAY(Text)), bindparam("kinds", type_=ARRAY(Text)))
        .table_valued("entity_type", "event_kind")
        .render_derived(name="wanted")
    )
    return (
        select(WorkflowAutomation.__table__)
        .where(
            tuple_(WorkflowAutomation.trigger_entity_type, WorkflowAutomation.trigger_action_type).in_(
                select(wanted.c.entity_type, wanted.c.event_kind)
            ),
            WorkflowAutomation.active_flag.is_(True),
        )
        .order_by(WorkflowAutomation.execution_order, WorkflowAutomation.created_ts)
    )


async def match(
    event: EntityEventData, rules: Sequence[Any], max_depth: int, evaluator: ConditionEvaluator
) -> tuple[list[RuleSnapshot], list[SkippedRule]]:
    """The seed's matching (type, action, scope, active, execution_order), then the field filter, the CEL
    condition (evaluated off the event loop, with a time and size budget) and the loop guard. A condition
    that cannot be evaluated skips its rule with the reason; the other rules still run."""

    def in_scope(rule: Any) -> bool:
        if rule.trigger_scope != "all" and str(rule.trigger_entity_id) != event.entity_id:
            return False
        field = (rule.trigger_conditions or {}).get("field")
        return field is None or field == event.field_name

    candidates = [rule for rule in rules if in_scope(rule)]
    conditional = [rule for rule in candidates if (rule.trigger_conditions or {}).get("expression")]
    outcomes: dict[Any, bool | ConditionError] = {}
    if conditional:
        variables = condition_variables(event.model_dump(mode="json"))
        results = await evaluator.evaluate_all([(r.trigger_conditions["expression"], variables) for r in conditional])
        outcomes = {rule.id: result for rule, result in zip(conditional, results, strict=True)}
    runs: list[RuleSnapshot] = []
    skipped: list[SkippedRule] = []
    for rule in candidates:
        outcome = outcomes.get(rule.id, True)
        if isinstance(outcome, ConditionError):
            skipped.append(SkippedRule(rule_id=str(rule.id), reason=str(outcome)))
            continue
        if not outcome:
            continue
        reason = loop_reason(str(rule.id), event, max_depth)
        if reason is not None:
            skipped.append(SkippedRule(rule_id=str(rule.id), reason=reason))
            continue
        runs.append(rule_snapshot(rule))
    return runs, skipped


async def record_skips(conn: AsyncConnection, event_id: str, skipped: list[SkippedRule], workflow_id: str) -> int:
    """Record the skipped rules of an event; how many were not recorded before (a retry records none)."""
    if not skipped:
        return 0
    now = datetime.now(UTC)
    result = await conn.execute(
        insert(RuleExecution)
        .values(
            [
                {
                    "rule_id": uuid.UUID(s.rule_id),
                    "event_id": uuid.UUID(event_id),
                    "status": "skipped",
                    "reason": s.reason,
                    "workflow_id": workflow_id,
                    "started_ts": now,
                    "finished_ts": now,
                }
                for s in skipped
            ]
        )
        .on_conflict_do_nothing()
        .returning(RuleExecution.rule_id)
    )
    return len(result.all())


async def claim(conn: AsyncConnection, rule_id: str, event_id: str, workflow_id: str) -> ClaimResult:
    """Count this run against max_executions exactly once; deactivate the rule at its limit.

    The counter update is a single conditional UPDATE, so N concurrent events can never run a rule more
    than max_executions times; the (rule, event) row makes a repeated claim return the first answer."""
    rule, event = uuid.UUID(rule_id), uuid.UUID(event_id)
    now = datetime.now(UTC)
    inserted = (
        await conn.execute(
            insert(RuleExecution)
            .values(rule_id=rule, event_id=event, workflow_id=workflow_id, status="running", started_ts=now)
            .on_conflict_do_nothing()
            .returning(RuleExecution.rule_id)
        )
    ).first()
    if inserted is None:
        existing = (
            await conn.execute(
                select(RuleExecution.__table__).where(RuleExecution.rule_id == rule, RuleExecution.event_id == event)
            )
        ).one()
        claimed = existing.status in ("running", "completed", "failed")
        return ClaimResult(
            claimed=claimed, execution_number=existing.execution_number, reason=existing.reason, repeated=True
        )
    table = WorkflowAutomation
    counted = (
        await conn.execute(
            update(table)
            .where(
                table.id == rule,
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
    where = (RuleExecution.rule_id == rule, RuleExecution.event_id == event)
    if counted is None:
        reason = "skipped: the rule is inactive or has reached max_executions"
        await conn.execute(update(RuleExecution).where(*where).values(status="skipped", reason=reason, finished_ts=now))
        return ClaimResult(claimed=False, reason=reason)
    await conn.execute(update(RuleExecution).where(*where).values(execution_number=counted[0]))
    return ClaimResult(claimed=True, execution_number=counted[0])


async def running_claims(conn: AsyncConnection, event_ids: Sequence[str]) -> dict[str, list[RuleSnapshot]]:
    """Rules claimed for these events whose runs may not have started (a dispatcher stopped between its
    claim and its start): they start again whatever the rules say now, since the run was counted."""
    rows = await conn.execute(
        select(RuleExecution.event_id, WorkflowAutomation.__table__)
        .join(WorkflowAutomation, WorkflowAutomation.id == RuleExecution.rule_id)
        .where(RuleExecution.event_id.in_([uuid.UUID(e) for e in event_ids]), RuleExecution.status == "running")
        .order_by(WorkflowAutomation.execution_order, WorkflowAutomation.created_ts)
    )
    found: dict[str, list[RuleSnapshot]] = {}
    for row in rows:
        found.setdefault(str(row.event_id), []).append(rule_snapshot(row))
    return found
