"""Analytics: the figures operations ask for, per process template, automation rule, agent and queue,
computed in SQL over the recorded rows (decision 0012). Step workflows' metrics are at
GET /api/v1/workflows/{name}/metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BeforeValidator
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import EngineDep, Reader, SettingsDep
from api.errors import ApiError
from core.agents.analytics import AgentsAnalytics, agents_analytics
from core.automation.analytics import AutomationAnalytics, automation_analytics
from core.process import templates
from core.process.analytics import TemplateAnalytics, template_analytics
from core.process.contracts import TemplatePublic
from core.work.analytics import QueueAnalytics, queue_analytics

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


def _iso(value: object) -> object:
    """A time in ISO 8601 only (pydantic would also read a bare number as seconds since 1970)."""
    if isinstance(value, str):
        try:
            float(value)  # 1700000000, 0.5, 8.9e-277, inf: a number, not a time
        except ValueError:
            return value
        raise ValueError("give a time in ISO 8601 with its zone, e.g. 2026-01-31T00:00:00Z")
    return value


From = Annotated[
    AwareDatetime | None,
    BeforeValidator(_iso),
    Query(alias="from", description="Rows from this time on (ISO 8601 with a zone, e.g. 2026-01-31T00:00:00Z)"),
]
To = Annotated[AwareDatetime | None, BeforeValidator(_iso), Query(alias="to", description="Rows before this time")]


def _check_window(from_ts: datetime | None, to_ts: datetime | None) -> None:
    if from_ts is not None and to_ts is not None and from_ts >= to_ts:
        raise ApiError(422, "validation_error", "from must be before to")


@router.get("/templates/{code}", response_model=TemplateAnalytics)
async def template_figures(
    code: Annotated[str, Path(max_length=50)],
    engine: EngineDep,
    _: Reader,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="One version; default: all")] = None,
    from_ts: From = None,
    to_ts: To = None,
    top: Annotated[int, Query(ge=1, le=100, description="Bottlenecks, stuck instances and paths listed")] = 10,
) -> TemplateAnalytics:
    """Instances started in the window: started, active, completed, succeeded, failed and the success
    rate; duration (average, p50, p95 seconds); per state entries and time spent against the state's
    expected avg_duration_days; bottlenecks; stuck instances; the most frequent paths; success per day
    and a duration histogram. State names and expectations are the version's (default: the latest)."""
    _check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        found = await template_figures_of(conn, code, version=version, from_ts=from_ts, to_ts=to_ts, top=top)
    return found[1]


async def template_figures_of(
    conn: AsyncConnection,
    code: str,
    *,
    version: int | None = None,
    from_ts: datetime | None = None,
    to_ts: datetime | None = None,
    top: int = 10,
) -> tuple[TemplatePublic, TemplateAnalytics]:
    """The template version (404 when there is none) and its figures: for this route and the console's
    page, which also draws the version's graph."""
    template = await templates.get_by_code(conn, code, version)
    if template is None:
        what = f"version {version} of template {code}" if version else f"template {code}"
        raise ApiError(404, "not_found", f"no {what}")
    figures = await template_analytics(
        conn,
        code,
        template.workflow_graph,
        version=version,
        from_ts=from_ts,
        to_ts=to_ts,
        now=datetime.now(UTC),
        top=top,
    )
    return template, figures


@router.get("/automation", response_model=AutomationAnalytics)
async def automation_figures(
    engine: EngineDep, _: Reader, rule_id: uuid.UUID | None = None, from_ts: From = None, to_ts: To = None
) -> AutomationAnalytics:
    """Per rule: executions by outcome, failures and skips by reason, p50/p95 from the event to the
    chain's end; webhook deliveries, dead letters and redeliveries. Executions started in the window."""
    _check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        return await automation_analytics(conn, rule_id=rule_id, from_ts=from_ts, to_ts=to_ts)


@router.get("/agents", response_model=AgentsAnalytics)
async def agent_figures(
    engine: EngineDep,
    settings: SettingsDep,
    _: Reader,
    from_ts: From = None,
    to_ts: To = None,
    session_id: Annotated[str | None, Query(max_length=100)] = None,
    agent: Annotated[str | None, Query(max_length=100)] = None,
    top: Annotated[int, Query(ge=1, le=500, description="Sessions listed, costliest first")] = 50,
) -> AgentsAnalytics:
    """Agent calls made in the window: per agent and model (calls, invalid outputs, errors, latency
    p50/p95, tokens, cost), per day and per session."""
    _check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        return await agents_analytics(
            conn,
            priced_models=set(settings.llm_prices),
            from_ts=from_ts,
            to_ts=to_ts,
            session_id=session_id,
            agent=agent,
            top=top,
        )


@router.get("/queue", response_model=QueueAnalytics)
async def queue_figures(engine: EngineDep, _: Reader, from_ts: From = None, to_ts: To = None) -> QueueAnalytics:
    """Work items created in the window: by status, priority label and definition;
    time to complete; snooze and skip rates."""
    _check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        return await queue_analytics(conn, from_ts=from_ts, to_ts=to_ts)
