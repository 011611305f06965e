"""Analytics of automation rules: per rule, its executions by outcome, failures and skips grouped by
reason, and the time from the event to the chain's finish; webhook deliveries, dead letters and
redeliveries. A rule execution is keyed by (rule, event) and an action's outcome by (rule, event,
action), so a retried activity or a redelivered event counts once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.platform.database import ANALYTICS_WORK_MEM, read_at_once
from core.platform.figures import rounded

# A reason's class: which action failed ("action 2 (call_webhook) failed"), or the reason up to its
# first colon ("skipped", "stopped", a condition's error); the full text stays on each execution.
_REASON = r"""
    CASE WHEN r.reason ~ '^action [0-9]+ \(' THEN substring(r.reason FROM '^action [0-9]+ \([^)]*\) failed')
         ELSE split_part(left(r.reason, 200), ':', 1) END
"""

_CHOSEN = """
    SELECT r.* FROM app.f_rule_execution r
    WHERE (CAST(:rule_id AS uuid) IS NULL OR r.rule_id = :rule_id)
      AND (CAST(:from_ts AS timestamptz) IS NULL OR r.started_ts >= :from_ts)
      AND (CAST(:to_ts AS timestamptz) IS NULL OR r.started_ts < :to_ts)
"""


class ReasonCount(BaseModel):
    reason: str
    count: int


class RuleFigures(BaseModel):
    rule_id: str
    workflow_name: str | None = Field(description="The rule's name (null if the rule was deleted)")
    executions: int = Field(description="Events the rule was considered for, each once")
    completed: int
    failed: int
    skipped: int
    running: int
    failures: list[ReasonCount]
    skips: list[ReasonCount]
    event_to_completion_p50_ms: float | None = Field(description="From the event to the chain's end, completed ones")
    event_to_completion_p95_ms: float | None


class WebhookFigures(BaseModel):
    deliveries: int = Field(description="Webhook actions that got a 2xx answer (each once, however many attempts)")
    dead_letters: int = Field(description="Webhooks that failed their last attempt")
    redelivered: int = Field(description="Dead letters redelivered through the API")
    redelivered_ok: int = Field(description="Of those, the ones the receiver answered 2xx")


class AutomationAnalytics(BaseModel):
    from_ts: datetime | None
    to_ts: datetime | None
    rules: list[RuleFigures]
    webhooks: WebhookFigures


# Per rule: the durations are worked out per execution first and grouped by the rule alone, its name
# joined to the few grouped rows after (a narrower sort than grouping by both; issue 27).
_PER_RULE = f"""
    WITH chosen AS ({_CHOSEN}),
    timed AS (
        SELECT r.rule_id, r.status,
               CASE WHEN r.status = 'completed'
                    THEN extract(epoch FROM r.finished_ts - coalesce(e.created_ts, r.started_ts)) * 1000 END AS ms
        FROM chosen r LEFT JOIN app.f_entity_event e ON e.id = r.event_id
    ),
    per_rule AS (
        SELECT rule_id, count(*) AS executions,
               count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'skipped') AS skipped,
               count(*) FILTER (WHERE status = 'running') AS running,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95
        FROM timed GROUP BY rule_id
    )
    SELECT p.*, a.workflow_name FROM per_rule p LEFT JOIN app.d_workflow_automation a ON a.id = p.rule_id
    ORDER BY p.executions DESC, p.rule_id
"""

_REASONS = f"""
    WITH chosen AS ({_CHOSEN})
    SELECT r.rule_id, r.status, {_REASON} AS reason, count(*) AS n
    FROM chosen r WHERE r.status IN ('failed', 'skipped')
    GROUP BY r.rule_id, r.status, 3 ORDER BY n DESC, 3
"""

_HOOKS = """
    SELECT
      (SELECT count(*) FROM app.f_action_log l
       WHERE l.action_type = 'call_webhook' AND l.status = 'done'
         AND (CAST(:rule_id AS uuid) IS NULL OR l.rule_id = :rule_id)
         AND (CAST(:from_ts AS timestamptz) IS NULL OR l.finished_ts >= :from_ts)
         AND (CAST(:to_ts AS timestamptz) IS NULL OR l.finished_ts < :to_ts)) AS deliveries,
      count(*) AS dead_letters,
      count(*) FILTER (WHERE d.redelivered_ts IS NOT NULL) AS redelivered,
      count(*) FILTER (WHERE d.redelivery_status BETWEEN 200 AND 299) AS redelivered_ok
    FROM app.f_webhook_dead_letter d
    WHERE (CAST(:rule_id AS uuid) IS NULL OR d.rule_id = :rule_id)
      AND (CAST(:from_ts AS timestamptz) IS NULL OR d.created_ts >= :from_ts)
      AND (CAST(:to_ts AS timestamptz) IS NULL OR d.created_ts < :to_ts)
"""


async def automation_analytics(
    engine: AsyncEngine, *, rule_id: uuid.UUID | None, from_ts: datetime | None, to_ts: datetime | None
) -> AutomationAnalytics:
    """The figures; the three parts (per rule, reasons, webhooks) are independent reads, made at once
    (``read_at_once``, decision 0023)."""
    params: dict[str, Any] = {"rule_id": rule_id, "from_ts": from_ts, "to_ts": to_ts}

    async def rows(conn: AsyncConnection, sql: str) -> list[Any]:
        return list((await conn.execute(text(sql), params)).all())

    per_rule, reasons, hooks = await read_at_once(
        engine,
        lambda conn: rows(conn, _PER_RULE),
        lambda conn: rows(conn, _REASONS),
        lambda conn: rows(conn, _HOOKS),
        work_mem=ANALYTICS_WORK_MEM,
    )
    grouped: dict[tuple[uuid.UUID, str], list[ReasonCount]] = {}
    for row in reasons:
        grouped.setdefault((row.rule_id, row.status), []).append(ReasonCount(reason=row.reason or "", count=row.n))
    rules = [
        RuleFigures(
            rule_id=str(r.rule_id),
            workflow_name=r.workflow_name,
            executions=r.executions,
            completed=r.completed,
            failed=r.failed,
            skipped=r.skipped,
            running=r.running,
            failures=grouped.get((r.rule_id, "failed"), []),
            skips=grouped.get((r.rule_id, "skipped"), []),
            event_to_completion_p50_ms=rounded(r.p50, 1),
            event_to_completion_p95_ms=rounded(r.p95, 1),
        )
        for r in per_rule
    ]
    webhooks = hooks[0]
    return AutomationAnalytics(
        from_ts=from_ts,
        to_ts=to_ts,
        rules=rules,
        webhooks=WebhookFigures(
            deliveries=webhooks.deliveries,
            dead_letters=webhooks.dead_letters,
            redelivered=webhooks.redelivered,
            redelivered_ok=webhooks.redelivered_ok,
        ),
    )
