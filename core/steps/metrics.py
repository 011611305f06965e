"""Execution metrics of a step workflow (seed 004's getExecutionMetrics and getPerformanceTrends), computed
in SQL over workflow_executions and workflow_steps: totals, average execution time, success and error
rates, bottlenecks (steps ranked by their p95 duration) and the same figures per period."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.figures import percent, rounded

Period = Literal["hour", "day", "week", "month"]
FINISHED = "('completed', 'failed', 'cancelled', 'compensated')"
ERRORED = "('failed', 'compensated')"


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Bottleneck(_Camel):
    step: str
    runs: int = Field(description="Completed or failed runs of the step (a foreach's iterations each count)")
    p95_duration_ms: float = Field(alias="p95DurationMs")
    average_duration_ms: float = Field(alias="averageDurationMs")


class Trend(_Camel):
    period_start: datetime = Field(alias="periodStart")
    total_executions: int = Field(alias="totalExecutions")
    average_execution_time: float | None = Field(alias="averageExecutionTime")
    success_rate: float | None = Field(alias="successRate")
    error_rate: float | None = Field(alias="errorRate")


class WorkflowMetrics(_Camel):
    workflow: str
    period: Period
    since: datetime
    total_executions: int = Field(alias="totalExecutions", description="Started in the window, in any status")
    finished_executions: int = Field(alias="finishedExecutions")
    average_execution_time: float | None = Field(
        alias="averageExecutionTime", description="Milliseconds from start to finish, over finished executions"
    )
    success_rate: float | None = Field(alias="successRate", description="Percent of finished executions completed")
    error_rate: float | None = Field(alias="errorRate", description="Percent of finished ones failed or compensated")
    bottlenecks: list[Bottleneck]
    trends: list[Trend]


_FIGURES = f"""
    count(*) AS total,
    count(*) FILTER (WHERE status IN {FINISHED}) AS finished,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status IN {ERRORED}) AS errored,
    avg(extract(epoch FROM finished_ts - started_ts) * 1000)
        FILTER (WHERE status IN {FINISHED} AND started_ts IS NOT NULL AND finished_ts IS NOT NULL) AS average_ms
"""


async def workflow_metrics(
    conn: AsyncConnection, workflow: str, period: Period, since: datetime, bottlenecks: int = 5
) -> WorkflowMetrics:
    params: dict[str, Any] = {"workflow": workflow, "since": since, "period": period, "limit": bottlenecks}
    totals = (
        await conn.execute(
            text(
                f"SELECT {_FIGURES} FROM app.workflow_executions "
                "WHERE workflow_name = :workflow AND created_ts >= :since"
            ),
            params,
        )
    ).one()
    trends = await conn.execute(
        text(
            f"SELECT date_trunc(:period, created_ts) AS bucket, {_FIGURES} FROM app.workflow_executions "
            "WHERE workflow_name = :workflow AND created_ts >= :since GROUP BY bucket ORDER BY bucket"
        ),
        params,
    )
    slow = await conn.execute(
        text(
            "SELECT s.name, count(*) AS runs, "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM s.finished_ts - s.started_ts) * 1000) "
            "AS p95, avg(extract(epoch FROM s.finished_ts - s.started_ts) * 1000) AS average "
            "FROM app.workflow_steps s JOIN app.workflow_executions e ON e.id = s.execution_id "
            "WHERE e.workflow_name = :workflow AND e.created_ts >= :since AND s.started_ts IS NOT NULL "
            "AND s.status IN ('completed', 'failed') AND s.path NOT LIKE 'compensate.%' "
            "GROUP BY s.name ORDER BY p95 DESC, s.name LIMIT :limit"
        ),
        params,
    )
    return WorkflowMetrics(
        workflow=workflow,
        period=period,
        since=since,
        total_executions=totals.total,
        finished_executions=totals.finished,
        average_execution_time=rounded(totals.average_ms, 1),
        success_rate=percent(totals.completed, totals.finished),
        error_rate=percent(totals.errored, totals.finished),
        bottlenecks=[
            Bottleneck(
                step=row.name,
                runs=row.runs,
                p95_duration_ms=rounded(row.p95, 1) or 0.0,
                average_duration_ms=rounded(row.average, 1) or 0.0,
            )
            for row in slow
        ],
        trends=[
            Trend(
                period_start=row.bucket,
                total_executions=row.total,
                average_execution_time=rounded(row.average_ms, 1),
                success_rate=percent(row.completed, row.finished),
                error_rate=percent(row.errored, row.finished),
            )
            for row in trends
        ],
    )
