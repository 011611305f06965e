"""Analytics of a process template (seed 000's workflow analytics: success rates, duration tracking and
bottleneck identification against each state's avg_duration_days), computed in SQL over the instance
projection and the event log.

Every figure counts rows keyed by the workflow (an instance id, an event id derived from the instance,
its step sequence and kind), so a retried activity, which writes the same keys again, counts once.
A state visit is a ``state_transition`` event; it lasts until the instance's next one, or until the
instance finished (cancelled) if none follows. Instances are chosen by when they started."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.platform.database import ANALYTICS_WORK_MEM, read_at_once
from core.platform.figures import percent, rounded
from core.process.contracts import StateNode, WorkflowGraph

DAY = 86_400.0


class Spread(BaseModel):
    """Seconds: mean, median and 95th percentile (linear interpolation, Postgres percentile_cont)."""

    average: float | None
    p50: float | None
    p95: float | None


class StateFigures(BaseModel):
    state_id: int
    name: str
    terminal: bool
    entries: int = Field(description="Times instances entered the state")
    left: int = Field(description="Of those, visits that ended (the time spent is measured over these)")
    time_spent_seconds: Spread
    expected_days: float | None = Field(description="The state's avg_duration_days in the template")
    ratio: float | None = Field(description="Mean time spent over the expected time; above 1 is slower than planned")


class StuckInstance(BaseModel):
    instance_id: str
    state_id: int
    state_name: str
    entered_ts: datetime
    days_in_state: float
    expected_days: float
    ratio: float


class PathCount(BaseModel):
    state_ids: list[int]
    states: list[str]
    instances: int


class DayFigures(BaseModel):
    day: datetime
    finished: int
    succeeded: int
    success_rate_pct: float | None


class HistogramBin(BaseModel):
    from_seconds: float
    to_seconds: float
    instances: int


class TemplateAnalytics(BaseModel):
    template_code: str
    version: int | None = Field(description="The version asked for; null: every version")
    from_ts: datetime | None
    to_ts: datetime | None
    started: int
    active: int
    completed: int = Field(description="Finished in a terminal state")
    cancelled: int
    succeeded: int = Field(description="Finished in a terminal state marked success")
    failed: int = Field(description="Finished otherwise: a failure state, rejected, timed out or cancelled")
    success_rate_pct: float | None = Field(description="succeeded / (succeeded + failed)")
    duration_seconds: Spread = Field(description="From start to finish, over finished instances")
    states: list[StateFigures]
    bottlenecks: list[StateFigures] = Field(description="States whose mean time is over the expected, worst first")
    stuck: list[StuckInstance] = Field(description="Active instances over the expected time in their state")
    stuck_count: int
    paths: list[PathCount] = Field(description="The most frequent state sequences of finished instances")
    success_by_day: list[DayFigures]
    duration_histogram: list[HistogramBin]


# The instances asked for: one template, optionally one version, started in [from, to).
_CHOSEN_WHERE = """
    WHERE template_code = :code
      AND (CAST(:version AS integer) IS NULL OR template_version = :version)
      AND (CAST(:from_ts AS timestamptz) IS NULL OR started_ts >= :from_ts)
      AND (CAST(:to_ts AS timestamptz) IS NULL OR started_ts < :to_ts)
"""

_CHOSEN = f"""
    SELECT id, workflow_status, success_flag, started_ts, completed_ts, current_state_id
    FROM app.d_industry_workflow_graph_data {_CHOSEN_WHERE}
"""

# The chosen instances' state history (the projection's list of state entries, in order: the same
# sequence as their state_transition events), for the paths without reading the event log.
_CHOSEN_HISTORY = f"""
    SELECT workflow_status, state_history FROM app.d_industry_workflow_graph_data {_CHOSEN_WHERE}
"""

# Every visit of a state by the chosen instances: the visits that ended are rows of f_state_visit,
# written by the state entry that ended each (core/process/store.py); the visit each instance is in
# now (or ended in, when it finished) comes from its projection's last history entry, and has ended at
# completed_ts if the instance finished. The same visits as the instance's state history and its
# state_transition events describe, aggregated by index instead of unnesting every history (issue 27).
_VISITS = f"""
    WITH chosen AS (
        SELECT id, completed_ts, state_history -> -1 AS last
        FROM app.d_industry_workflow_graph_data {_CHOSEN_WHERE}
    ),
    visits AS (
        SELECT v.state_id, v.seconds
        FROM app.f_state_visit v {{chosen_only}}
        WHERE v.template_code = :code
        UNION ALL
        SELECT CAST(last ->> 'to' AS integer),
               extract(epoch FROM completed_ts - CAST(last ->> 'ts' AS timestamptz))
        FROM chosen WHERE last IS NOT NULL
    )
"""


def _visits(params: dict[str, Any]) -> str:
    """_VISITS for ``params``: with no version or window, every visit of the template's code is of a chosen
    instance (an instance keeps its code, and none is deleted), so the visits need no join."""
    narrowed = any(params.get(k) is not None for k in ("version", "from_ts", "to_ts"))
    return _VISITS.format(chosen_only="JOIN chosen c ON c.id = v.instance_id" if narrowed else "")


# The chosen running instances, each in its current state since its latest state entry (the projection's
# last history entry: the same moment as its latest state_transition event, without reading the log).
_ACTIVE_ENTERED = f"""
    SELECT id AS instance_id, current_state_id AS state_id,
           CAST(state_history -> -1 ->> 'ts' AS timestamptz) AS entered
    FROM app.d_industry_workflow_graph_data {_CHOSEN_WHERE} AND workflow_status = 'active'
"""

_SPREAD = """
    avg({x}) AS average,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {x}) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY {x}) AS p95
"""
# The instances that finished (the durations' rows; an active instance's is NULL and not counted).
_FINISHED_SECONDS = "CASE WHEN workflow_status <> 'active' THEN extract(epoch FROM completed_ts - started_ts) END"


def _spread(row: Any) -> Spread:
    return Spread(average=rounded(row.average, 3), p50=rounded(row.p50, 3), p95=rounded(row.p95, 3))


async def template_analytics(
    engine: AsyncEngine,
    code: str,
    graph: WorkflowGraph,
    *,
    version: int | None,
    from_ts: datetime | None,
    to_ts: datetime | None,
    now: datetime,
    top: int = 10,
) -> TemplateAnalytics:
    """The figures; the parts are independent reads, made at once (``read_at_once``)."""
    params: dict[str, Any] = {"code": code, "version": version, "from_ts": from_ts, "to_ts": to_ts, "top": top}
    states = {s.id: s for s in graph.states}

    totals, figures, (stuck, stuck_count), paths, by_day, histogram = await read_at_once(
        engine,
        lambda conn: _totals(conn, params),
        lambda conn: state_figures(conn, params, states),
        lambda conn: _stuck(conn, params, states, now, top),
        lambda conn: _paths(conn, params, states),
        lambda conn: _by_day(conn, params),
        lambda conn: _histogram(conn, params),
        work_mem=ANALYTICS_WORK_MEM,
    )
    bottlenecks = sorted((f for f in figures if f.ratio is not None and f.ratio > 1), key=lambda f: -(f.ratio or 0))
    return TemplateAnalytics(
        template_code=code,
        version=version,
        from_ts=from_ts,
        to_ts=to_ts,
        started=totals.started,
        active=totals.active,
        completed=totals.completed,
        cancelled=totals.cancelled,
        succeeded=totals.succeeded,
        failed=totals.failed,
        success_rate_pct=percent(totals.succeeded, totals.succeeded + totals.failed),
        duration_seconds=_spread(totals),
        states=figures,
        bottlenecks=bottlenecks[:top],
        stuck=stuck,
        stuck_count=stuck_count,
        paths=paths,
        success_by_day=by_day,
        duration_histogram=histogram,
    )


async def _totals(conn: AsyncConnection, params: dict[str, Any]) -> Any:
    """One pass over the chosen instances for the counts and the durations of the finished ones."""
    return (
        await conn.execute(
            text(
                f"""
                WITH chosen AS ({_CHOSEN})
                SELECT count(*) AS started,
                       count(*) FILTER (WHERE workflow_status = 'active') AS active,
                       count(*) FILTER (WHERE workflow_status = 'completed') AS completed,
                       count(*) FILTER (WHERE workflow_status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE workflow_status <> 'active' AND success_flag) AS succeeded,
                       count(*) FILTER (WHERE workflow_status <> 'active' AND NOT coalesce(success_flag, false))
                           AS failed,
                       {_SPREAD.format(x=_FINISHED_SECONDS)}
                FROM chosen
                """
            ),
            params,
        )
    ).one()


async def state_figures(
    conn: AsyncConnection, params: dict[str, Any], states: dict[int, StateNode]
) -> list[StateFigures]:
    """Per state of the chosen instances (``params`` of _CHOSEN): entries, visits that ended and the
    time spent in them against the state's expected time; by state id."""
    per_state = await conn.execute(
        text(
            _visits(params)
            + "SELECT state_id, count(*) AS entries, count(seconds) AS left_count, "
            + _SPREAD.format(x="seconds")
            + " FROM visits GROUP BY state_id"
        ),
        params,
    )
    figures: list[StateFigures] = []
    for row in per_state:
        state = states.get(row.state_id)
        terminal = bool(state and state.terminal_flag)
        spread = Spread(average=None, p50=None, p95=None) if terminal else _spread(row)
        expected = state.avg_duration_days if state else None
        ratio = round(spread.average / (expected * DAY), 3) if spread.average is not None and expected else None
        figures.append(
            StateFigures(
                state_id=row.state_id,
                name=state.name if state else f"state {row.state_id}",
                terminal=terminal,
                entries=row.entries,
                left=0 if terminal else row.left_count,
                time_spent_seconds=spread,
                expected_days=expected,
                ratio=ratio,
            )
        )
    figures.sort(key=lambda f: f.state_id)
    return figures


async def _stuck(
    conn: AsyncConnection, params: dict[str, Any], states: dict[int, Any], now: datetime, top: int
) -> tuple[list[StuckInstance], int]:
    """Active instances in a state with an expected time, longer than it. The expectations come from
    the template (admin-authored), passed as a parameter array, never spliced into the SQL."""
    expected = {sid: s.avg_duration_days for sid, s in states.items() if s.avg_duration_days and not s.terminal_flag}
    if not expected:
        return [], 0
    rows = (
        await conn.execute(
            text(
                f"""
                WITH current AS ({_ACTIVE_ENTERED}),
                expectations AS (
                    SELECT * FROM unnest(CAST(:state_ids AS integer[]), CAST(:days AS double precision[]))
                        AS x(state_id, days)
                ),
                over AS (
                    SELECT c.instance_id, c.state_id, c.entered, x.days,
                           extract(epoch FROM CAST(:now AS timestamptz) - c.entered) / 86400.0 AS in_state
                    FROM current c JOIN expectations x ON x.state_id = c.state_id
                )
                SELECT *, count(*) OVER () AS total FROM over WHERE in_state > days
                ORDER BY in_state / days DESC, instance_id LIMIT :top
                """
            ),
            {**params, "now": now, "state_ids": list(expected), "days": [float(d) for d in expected.values()]},
        )
    ).all()
    stuck = [
        StuckInstance(
            instance_id=str(r.instance_id),
            state_id=r.state_id,
            state_name=states[r.state_id].name,
            entered_ts=r.entered,
            days_in_state=round(float(r.in_state), 3),
            expected_days=float(r.days),
            ratio=round(float(r.in_state) / float(r.days), 3),
        )
        for r in rows
    ]
    return stuck, (rows[0].total if rows else 0)


async def _paths(conn: AsyncConnection, params: dict[str, Any], states: dict[int, Any]) -> list[PathCount]:
    rows = await conn.execute(
        text(
            f"""
            WITH chosen AS ({_CHOSEN_HISTORY}),
            paths AS (
                SELECT jsonb_path_query_array(state_history, '$[*].to') AS path, count(*) AS instances
                FROM chosen WHERE workflow_status <> 'active' GROUP BY 1
            )
            SELECT ARRAY(SELECT CAST(jsonb_array_elements_text(path) AS integer)) AS path, instances
            FROM paths ORDER BY instances DESC, 1 LIMIT :top
            """
        ),
        params,
    )
    return [
        PathCount(
            state_ids=list(r.path),
            states=[states[s].name if s in states else f"state {s}" for s in r.path],
            instances=r.instances,
        )
        for r in rows
    ]


async def _by_day(conn: AsyncConnection, params: dict[str, Any]) -> list[DayFigures]:
    rows = await conn.execute(
        text(
            f"""
            WITH chosen AS ({_CHOSEN})
            SELECT date_trunc('day', completed_ts) AS day, count(*) AS finished,
                   count(*) FILTER (WHERE success_flag) AS succeeded
            FROM chosen WHERE workflow_status <> 'active' AND completed_ts IS NOT NULL
            GROUP BY day ORDER BY day
            """
        ),
        params,
    )
    return [
        DayFigures(
            day=r.day, finished=r.finished, succeeded=r.succeeded, success_rate_pct=percent(r.succeeded, r.finished)
        )
        for r in rows
    ]


async def _histogram(conn: AsyncConnection, params: dict[str, Any], bins: int = 12) -> list[HistogramBin]:
    """Finished instances' durations in equal-width bins from 0 to the longest one."""
    rows = (
        await conn.execute(
            text(
                f"""
                WITH chosen AS ({_CHOSEN}),
                d AS (
                    SELECT extract(epoch FROM completed_ts - started_ts) AS seconds FROM chosen
                    WHERE workflow_status <> 'active' AND completed_ts IS NOT NULL
                ),
                top AS (SELECT max(seconds) AS longest FROM d)
                SELECT least(width_bucket(d.seconds, 0, greatest(top.longest, 1e-9), :bins), :bins) AS bin,
                       top.longest, count(*) AS instances
                FROM d, top GROUP BY bin, top.longest ORDER BY bin
                """
            ),
            {**params, "bins": bins},
        )
    ).all()
    if not rows:
        return []
    width = max(float(rows[0].longest), 1e-9) / bins
    counts = {max(int(r.bin), 1): 0 for r in rows}
    for r in rows:
        counts[max(int(r.bin), 1)] += r.instances
    return [
        HistogramBin(from_seconds=round((b - 1) * width, 3), to_seconds=round(b * width, 3), instances=counts.get(b, 0))
        for b in range(1, bins + 1)
    ]
