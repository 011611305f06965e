"""Where forecasts get their data, and where they are kept (issue 26): the recorded state visits of a
template version as of a moment, its running instances, the model built from them (cached per process
for ``forecast_model_seconds``), and the rows the forecast watch writes (the latest forecast per running
instance, the early warnings).

A visit is a ``state_transition`` event; it ends at the instance's next transition (its next state),
at its cancellation (an outcome that is not a success), or is still open at ``as_of`` (censored). Events
after ``as_of`` are not seen, so the backtest cuts the same history at a date the way time would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.process.contracts import WorkflowGraph
from core.process.forecast import CANCELLED, OPEN, Forecast, Model, Stays, Visit, build
from core.process.tables import ForecastWarning, InstanceForecast

_VISITS = """
    WITH chosen AS (
        SELECT id FROM app.d_industry_workflow_graph_data
        WHERE template_code = :code AND template_version = :version AND started_ts <= :as_of
    ),
    moves AS (
        SELECT e.workflow_data_id, e.seq, e.event_type, e.to_state_id, e.event_ts
        FROM app.f_industry_workflow_events e JOIN chosen c ON c.id = e.workflow_data_id
        WHERE e.event_type IN ('state_transition', 'instance_cancelled') AND e.event_ts <= :as_of
    ),
    ordered AS (
        SELECT event_type, to_state_id, event_ts,
               lead(event_type) OVER w AS next_type, lead(to_state_id) OVER w AS next_state,
               lead(event_ts) OVER w AS next_ts
        FROM moves WINDOW w AS (PARTITION BY workflow_data_id ORDER BY seq, event_ts)
    )
    SELECT to_state_id, extract(epoch FROM coalesce(next_ts, :as_of) - event_ts) AS seconds,
           CASE WHEN next_type = 'state_transition' THEN next_state
                WHEN next_type = 'instance_cancelled' THEN :cancelled END AS next_state
    FROM ordered WHERE event_type = 'state_transition'
"""

# The same visits as arrays per state: a few rows instead of one per visit (a quarter of a million for
# a template of 100,000 instances), and no Python object per visit; a still open stay goes next to OPEN.
_STAYS = f"""
    SELECT to_state_id, array_agg(seconds::float8) AS seconds, array_agg(coalesce(next_state, {OPEN})) AS next_state
    FROM ({_VISITS}) AS v GROUP BY to_state_id
"""

# Running at as_of: started by then, and not finished by then; in the state of its last move by then.
_RUNNING = """
    WITH chosen AS (
        SELECT id, started_ts FROM app.d_industry_workflow_graph_data
        WHERE template_code = :code AND template_version = :version AND started_ts <= :as_of
          AND (completed_ts IS NULL OR completed_ts > :as_of)
          AND (CAST(:only AS uuid) IS NULL OR id = :only)
    )
    SELECT c.id, c.started_ts, last.to_state_id, last.event_ts
    FROM chosen c
    CROSS JOIN LATERAL (
        SELECT e.to_state_id, e.event_ts FROM app.f_industry_workflow_events e
        WHERE e.workflow_data_id = c.id AND e.event_type = 'state_transition' AND e.event_ts <= :as_of
        ORDER BY e.seq DESC LIMIT 1
    ) AS last
"""


@dataclass(frozen=True)
class Running:
    instance_id: uuid.UUID
    started: datetime
    state_id: int
    entered: datetime


async def visits(conn: AsyncConnection, code: str, version: int, as_of: datetime) -> list[Visit]:
    rows = await conn.execute(text(_VISITS), {"code": code, "version": version, "as_of": as_of, "cancelled": CANCELLED})
    return [Visit(state_id=r[0], seconds=float(r[1]), next_state=r[2]) for r in rows.all()]


async def stays(conn: AsyncConnection, code: str, version: int, as_of: datetime) -> dict[int, Stays]:
    rows = await conn.execute(text(_STAYS), {"code": code, "version": version, "as_of": as_of, "cancelled": CANCELLED})
    return {
        r.to_state_id: Stays(
            seconds=np.asarray(r.seconds, dtype=np.float64), next_state=np.asarray(r.next_state, dtype=np.int64)
        )
        for r in rows.all()
    }


async def running(
    conn: AsyncConnection, code: str, version: int, as_of: datetime, only: uuid.UUID | None = None
) -> list[Running]:
    rows = await conn.execute(text(_RUNNING), {"code": code, "version": version, "as_of": as_of, "only": only})
    return [Running(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def graph_of(conn: AsyncConnection, code: str, version: int) -> WorkflowGraph | None:
    raw = (
        await conn.execute(
            text(
                "SELECT workflow_graph FROM app.d_industry_workflow_graph_head "
                "WHERE code = :code AND version = :version"
            ),
            {"code": code, "version": version},
        )
    ).scalar()
    return WorkflowGraph.model_validate(raw) if raw is not None else None


async def build_model(
    conn: AsyncConnection, code: str, version: int, *, as_of: datetime, min_visits: int
) -> Model | None:
    graph = await graph_of(conn, code, version)
    if graph is None:
        return None
    return build(graph, await stays(conn, code, version, as_of), min_visits=min_visits, sla_days=graph.sla_days)


# Models by (code, version, min_visits): built from every visit up to now, reused for a while (a model
# a few minutes old forecasts as well; building one reads every visit of the version).
_MODELS: dict[tuple[str, int, int], tuple[float, Model]] = {}


async def current_model(conn: AsyncConnection, code: str, version: int, *, min_visits: int, ttl: float) -> Model | None:
    key = (code, version, min_visits)
    cached = _MODELS.get(key)
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    model = await build_model(conn, code, version, as_of=datetime.now(UTC), min_visits=min_visits)
    if model is not None:
        if len(_MODELS) > 200:
            _MODELS.clear()
        _MODELS[key] = (time.monotonic(), model)
    return model


def forecastable(model: Model, runs: Sequence[Running]) -> list[Running]:
    """The runs the model can forecast: in a running state of its version (not one removed or terminal)."""
    return [r for r in runs if r.state_id in model.states and not model.states[r.state_id].node.terminal_flag]


def forecast_of(model: Model, run: Running, now: datetime) -> Forecast:
    return model.forecast(
        run.state_id,
        (now - run.entered).total_seconds(),
        now=now,
        started=run.started,
        instance_id=str(run.instance_id),
    )


async def keep_forecasts(conn: AsyncConnection, code: str, forecasts: Sequence[Forecast]) -> None:
    """Replace the kept forecasts of these instances (what the list sorts by risk)."""
    rows: list[dict[str, Any]] = [
        {
            "instance_id": uuid.UUID(f.instance_id or ""),
            "template_code": code,
            "state_id": f.state_id,
            "success_probability": f.success_probability,
            "remaining_p50_seconds": f.remaining_p50_seconds,
            "remaining_p90_seconds": f.remaining_p90_seconds,
            "on_time_probability": f.on_time_probability,
            "deadline": f.deadline,
            "risk": f.risk,
            "uncertain": f.uncertain,
            "computed_ts": datetime.now(UTC),
        }
        for f in forecasts
    ]
    for start in range(0, len(rows), 1000):
        chunk = insert(InstanceForecast).values(rows[start : start + 1000])
        await conn.execute(
            chunk.on_conflict_do_update(
                index_elements=[InstanceForecast.instance_id],
                set_={c: chunk.excluded[c] for c in rows[0] if c != "instance_id"},
            )
        )


async def warn(conn: AsyncConnection, forecast: Forecast, code: str, owner_role: str) -> bool:
    """Record the early warning of an instance once; True when this call recorded it."""
    assert forecast.deadline is not None and forecast.on_time_probability is not None
    row = (
        await conn.execute(
            insert(ForecastWarning)
            .values(
                instance_id=uuid.UUID(forecast.instance_id or ""),
                template_code=code,
                owner_role=owner_role,
                on_time_probability=forecast.on_time_probability,
                deadline=forecast.deadline,
            )
            .on_conflict_do_nothing()
            .returning(ForecastWarning.instance_id)
        )
    ).first()
    return row is not None


async def template_exists(conn: AsyncConnection, code: str) -> bool:
    found = await conn.execute(
        text("SELECT 1 FROM app.d_industry_workflow_graph_head WHERE code = :c LIMIT 1"), {"c": code}
    )
    return found.first() is not None


async def running_versions(conn: AsyncConnection, code: str) -> list[int]:
    rows = await conn.execute(
        text(
            "SELECT DISTINCT template_version FROM app.d_industry_workflow_graph_data "
            "WHERE template_code = :code AND workflow_status = 'active' ORDER BY 1"
        ),
        {"code": code},
    )
    return [r[0] for r in rows.all()]


async def watched_versions(conn: AsyncConnection) -> list[tuple[str, int]]:
    """Template versions with running instances."""
    rows = await conn.execute(
        text(
            "SELECT DISTINCT template_code, template_version FROM app.d_industry_workflow_graph_data "
            "WHERE workflow_status = 'active' ORDER BY 1, 2"
        )
    )
    return [(r[0], r[1]) for r in rows.all()]


class WatchResult(BaseModel):
    versions: int = Field(description="Template versions with running instances that were forecast")
    instances: int = Field(description="Running instances whose forecast was refreshed")
    warned: list[str] = Field(description="Instances that got an early warning in this run")
    workflow_id: str = Field(default="", description="The ForecastWatch run that did it")


async def watch(
    conn: AsyncConnection, *, min_visits: int, now: datetime | None = None
) -> tuple[WatchResult, list[tuple[str, str, Forecast]]]:
    """Forecast every running instance, keep the forecasts, and record an early warning for each one
    whose chance to meet its deadline fell below its template's ``at_risk_below`` while the deadline is
    still ahead. Returns what it did and the new warnings as (template code, owner role, forecast), for
    the caller to notify in the same transaction."""
    now = now or datetime.now(UTC)
    versions = await watched_versions(conn)
    # Forecasts of instances no longer running go first (a finished instance has no risk to sort by).
    await conn.execute(
        text(
            "DELETE FROM app.instance_forecasts f USING app.d_industry_workflow_graph_data d "
            "WHERE f.instance_id = d.id AND d.workflow_status <> 'active'"
        )
    )
    warned: list[tuple[str, str, Forecast]] = []
    count = 0
    for code, version in versions:
        model = await build_model(conn, code, version, as_of=now, min_visits=min_visits)
        if model is None:
            continue
        forecasts = [
            forecast_of(model, run, now) for run in forecastable(model, await running(conn, code, version, now))
        ]
        count += len(forecasts)
        await keep_forecasts(conn, code, forecasts)
        threshold = model.graph.at_risk_below
        if threshold is None:
            continue
        for forecast in forecasts:
            late = forecast.deadline is None or forecast.deadline <= now
            if late or forecast.on_time_probability is None or forecast.on_time_probability >= threshold:
                continue
            if await warn(conn, forecast, code, model.graph.owner_role):
                warned.append((code, model.graph.owner_role, forecast))
    result = WatchResult(versions=len(versions), instances=count, warned=[f.instance_id or "" for _, _, f in warned])
    return result, warned


async def open_warnings(conn: AsyncConnection, *, limit: int = 500) -> list[dict[str, Any]]:
    """Early warnings not yet acknowledged, of instances still running whose deadline is still ahead
    (past it, the instance is late, not at risk), soonest deadline first."""
    rows = await conn.execute(
        text(
            """
            SELECT w.instance_id, w.template_code, w.owner_role, w.on_time_probability, w.deadline, w.warned_ts,
                   d.current_state_name, d.root_entity_id, e.name AS entity_name
            FROM app.forecast_warnings w
            JOIN app.d_industry_workflow_graph_data d ON d.id = w.instance_id AND d.workflow_status = 'active'
            LEFT JOIN app.d_entity e ON e.id = d.root_entity_id
            WHERE w.acknowledged_ts IS NULL AND w.deadline > now()
            ORDER BY w.deadline, w.instance_id LIMIT :limit
            """
        ),
        {"limit": limit},
    )
    return [dict(r._mapping) for r in rows]
