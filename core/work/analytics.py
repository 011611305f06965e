"""Analytics of the work queue (seed 001's completion analytics): items by status, by priority label
and by definition, the time from an item's creation to its completion, and how often items are
snoozed and skipped. An item is one row whatever its workflow retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.figures import percent, rounded
from core.work.priority import priority_label

_CHOSEN = """
    SELECT i.*, d.name AS definition_name FROM app.work_item i JOIN app.work_definition d ON d.id = i.definition_id
    WHERE (CAST(:from_ts AS timestamptz) IS NULL OR i.created_ts >= :from_ts)
      AND (CAST(:to_ts AS timestamptz) IS NULL OR i.created_ts < :to_ts)
"""


class Count(BaseModel):
    key: str
    count: int


class QueueAnalytics(BaseModel):
    from_ts: datetime | None
    to_ts: datetime | None
    items: int
    by_status: list[Count]
    by_label: list[Count] = Field(description="Open items by priority label (Critical, High, Medium, Low)")
    by_definition: list[Count]
    completed: int
    skipped: int
    time_to_complete_p50_hours: float | None
    time_to_complete_p95_hours: float | None
    time_to_complete_average_hours: float | None
    snooze_rate_pct: float | None = Field(description="Items snoozed at least once, over all items")
    skip_rate_pct: float | None = Field(description="Skipped over finished (completed or skipped) items")


async def queue_analytics(conn: AsyncConnection, *, from_ts: datetime | None, to_ts: datetime | None) -> QueueAnalytics:
    params: dict[str, Any] = {"from_ts": from_ts, "to_ts": to_ts}
    totals = (
        await conn.execute(
            text(
                f"""
                WITH c AS ({_CHOSEN})
                SELECT count(*) AS items,
                       count(*) FILTER (WHERE status = 'completed') AS completed,
                       count(*) FILTER (WHERE status = 'skipped') AS skipped,
                       count(*) FILTER (WHERE snoozed_at IS NOT NULL) AS snoozed,
                       avg(extract(epoch FROM completed_at - created_ts)) FILTER (WHERE status = 'completed') AS avg_s,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_ts))
                           FILTER (WHERE status = 'completed') AS p50_s,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_ts))
                           FILTER (WHERE status = 'completed') AS p95_s
                FROM c
                """
            ),
            params,
        )
    ).one()
    by_status = await conn.execute(
        text(f"WITH c AS ({_CHOSEN}) SELECT status, count(*) AS n FROM c GROUP BY status ORDER BY status"), params
    )
    by_definition = await conn.execute(
        text(
            f"WITH c AS ({_CHOSEN}) SELECT definition_name, count(*) AS n FROM c "
            "GROUP BY definition_name ORDER BY n DESC, definition_name"
        ),
        params,
    )
    scores = await conn.execute(
        text(
            f"WITH c AS ({_CHOSEN}) SELECT priority_score, count(*) AS n FROM c "
            "WHERE status IN ('not_started', 'underway', 'snoozed') GROUP BY priority_score"
        ),
        params,
    )
    labels: dict[str, int] = {}
    for row in scores:  # the label is a function of the score (core/work/priority.py), applied here
        label = priority_label(row.priority_score)
        labels[label] = labels.get(label, 0) + row.n
    order = ["Critical", "High", "Medium", "Low"]
    return QueueAnalytics(
        from_ts=from_ts,
        to_ts=to_ts,
        items=totals.items,
        by_status=[Count(key=r.status, count=r.n) for r in by_status],
        by_label=[Count(key=label, count=labels[label]) for label in order if label in labels],
        by_definition=[Count(key=r.definition_name, count=r.n) for r in by_definition],
        completed=totals.completed,
        skipped=totals.skipped,
        time_to_complete_p50_hours=rounded(totals.p50_s, 3, per=3600),
        time_to_complete_p95_hours=rounded(totals.p95_s, 3, per=3600),
        time_to_complete_average_hours=rounded(totals.avg_s, 3, per=3600),
        snooze_rate_pct=percent(totals.snoozed, totals.items),
        skip_rate_pct=percent(totals.skipped, totals.completed + totals.skipped),
    )
