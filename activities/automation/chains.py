"""Activities of automation chains: claim an execution (max_executions enforced atomically), finish it,
dead-letter a webhook that failed its last attempt, and run scheduled rules. ``match`` serves the
entity-event workflows of histories recorded before the dispatcher matched events itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.automation import matching, store
from core.automation.evaluator import ConditionEvaluator
from core.automation.rendering import build_webhook
from core.automation.rules import (
    ChainInput,
    ClaimInput,
    ClaimResult,
    DeadLetterInput,
    EventRef,
    FinishInput,
    MatchResult,
    ScheduledInput,
)
from core.entities import store as entities
from core.entities.contracts import EntityEventData, EntitySnapshot
from core.platform import telemetry
from core.platform.ids import derived_id
from core.platform.settings import Settings
from core.platform.tools import RetrySpec


def webhook_retry(settings: Settings) -> RetrySpec:
    return RetrySpec(
        max_attempts=settings.webhook_max_attempts,
        initial_seconds=settings.webhook_initial_retry_seconds,
        max_seconds=settings.webhook_max_retry_seconds,
    )


class AutomationActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings, evaluator: ConditionEvaluator) -> None:
        self._engine = engine
        self._settings = settings
        self._evaluator = evaluator

    @activity.defn(name="automation.match")
    async def match(self, ref: EventRef) -> MatchResult:
        """Match an event's rules (the dispatcher does this itself now; kept for histories in flight)."""
        async with self._engine.begin() as conn:
            row = await store.event_to_match(conn, uuid.UUID(ref.event_id))
            if row is None:
                return MatchResult(runs=[])
            event = matching.event_of(row)
            rules = await matching.candidate_rules(conn, [(event.entity_type, event.event_kind)])
            runs, skipped = await matching.match(
                event,
                rules.get((event.entity_type, event.event_kind), []),
                self._settings.automation_max_depth,
                self._evaluator,
            )
            await matching.record_skips(conn, event.id, skipped, f"entity-event-{event.id}")
        retry = webhook_retry(self._settings)
        return MatchResult(
            runs=[ChainInput(rule=rule, event=event, webhook_retry=retry) for rule in runs], skipped=skipped
        )

    @activity.defn(name="automation.scheduled_event")
    async def scheduled_event(self, data: ScheduledInput) -> MatchResult:
        """A scheduled firing as an event (not stored in the outbox): the rule's entity if 'specific'."""
        info = activity.info()
        async with self._engine.connect() as conn:
            rule = await store.get_rule(conn, uuid.UUID(data.rule_id))
            if rule is None or not rule.active_flag:
                return MatchResult(runs=[])
            entity = await entities.load(conn, rule.trigger_entity_id) if rule.trigger_entity_id else None
        snapshot = EntitySnapshot.model_validate(entity) if entity else None
        event = EntityEventData(
            id=str(derived_id("scheduled", info.workflow_id, info.workflow_run_id)),
            entity_id=snapshot.id if snapshot else None,
            entity_type=rule.trigger_entity_type,
            event_kind="scheduled",
            old_entity=snapshot,
            new_entity=snapshot,
            actor="system:schedule",
            created_ts=datetime.now(UTC),
        )
        chain = ChainInput(rule=matching.rule_snapshot(rule), event=event, webhook_retry=webhook_retry(self._settings))
        return MatchResult(runs=[chain])

    @activity.defn(name="automation.claim")
    async def claim(self, data: ClaimInput) -> ClaimResult:
        """Count this run against max_executions exactly once (see core/automation/matching.claim)."""
        async with self._engine.begin() as conn:
            result = await matching.claim(conn, data.rule_id, data.event_id, data.workflow_id)
        if not result.claimed and not result.repeated:
            labels = {"entity_type": data.entity_type, "outcome": "skipped"}
            telemetry.count(activity.metric_meter(), telemetry.RULE_EXECUTIONS, labels)
        return result

    @activity.defn(name="automation.finish")
    async def finish(self, data: FinishInput) -> None:
        async with self._engine.begin() as conn:
            finished = await store.finish_execution(
                conn, uuid.UUID(data.rule_id), uuid.UUID(data.event_id), data.status, data.reason
            )
        if finished:
            labels = {"entity_type": data.entity_type, "outcome": data.status}
            telemetry.count(activity.metric_meter(), telemetry.RULE_EXECUTIONS, labels)

    @activity.defn(name="automation.dead_letter")
    async def dead_letter(self, data: DeadLetterInput) -> str:
        """Keep the webhook that failed its last attempt, with its last status, for redelivery; the dead
        letter's id, or "" when there is no request to keep."""
        async with self._engine.begin() as conn:
            # Rebuilt exactly as it was sent: same rendering, same webhook-id. A webhook that could not
            # even be built (a template refused its values) has nothing to redeliver: "" says so.
            try:
                request = await build_webhook(
                    conn, data.rule, data.event, data.action_index, self._settings.template_max_output_chars
                )
            except ApplicationError:
                return ""
            dead_letter_id, inserted = await store.keep_dead_letter(conn, request, data)
        if inserted:  # a retried write updates the row it inserted
            labels = {"entity_type": data.event.entity_type, "outcome": "dead_lettered"}
            telemetry.count(activity.metric_meter(), telemetry.WEBHOOK_DELIVERIES, labels)
        return str(dead_letter_id)
