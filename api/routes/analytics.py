"""Analytics: the figures operations ask for, per process template, automation rule, agent and queue,
computed in SQL over the recorded rows (decision 0012). Step workflows' metrics are at
GET /api/v1/workflows/{name}/metrics."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BeforeValidator

from api.commands import analytics as commands
from api.commands import forecasts
from api.commands.forecasts import TemplateForecast
from api.deps import EngineDep, GatewayDep, Operator, Reader, SettingsDep
from core.agents.analytics import AgentsAnalytics
from core.automation.analytics import AutomationAnalytics, automation_analytics
from core.platform.recommendations import Recommendations
from core.process.analytics import TemplateAnalytics
from core.process.forecast_data import WatchResult
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


@router.get("/templates/{code}", response_model=TemplateAnalytics)
async def template_figures(
    code: Annotated[str, Path(max_length=50)],
    engine: EngineDep,
    principal: Reader,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="One version; default: all")] = None,
    from_ts: From = None,
    to_ts: To = None,
    top: Annotated[int, Query(ge=1, le=100, description="Bottlenecks, stuck instances and paths listed")] = 10,
) -> TemplateAnalytics:
    """Instances started in the window: started, active, completed, succeeded, failed and the success
    rate; duration (average, p50, p95 seconds); per state entries and time spent against the state's
    expected avg_duration_days; bottlenecks; stuck instances; the most frequent paths; success per day
    and a duration histogram. State names and expectations are the version's (default: the latest)."""
    found = await commands.template_figures(
        code, principal, engine, version=version, from_ts=from_ts, to_ts=to_ts, top=top
    )
    return found[1]


@router.get("/templates/{code}/recommendations", response_model=Recommendations)
async def template_recommendations(
    code: Annotated[str, Path(max_length=50)],
    engine: EngineDep,
    principal: Reader,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="One version; default: the latest")] = None,
) -> Recommendations:
    """Seed 004's optimizer for a template version, over its instances: states whose mean time is over
    their expected time (once 20 visits ended), paths out of a state no instance took (once 20 left it),
    and states fewer than 5 % of the instances reached (once 50 started). Each names its counts."""
    return await commands.template_recommendations(code, principal, engine, version=version)


@router.get("/templates/{code}/forecast", response_model=TemplateForecast)
async def template_forecast(
    code: Annotated[str, Path(max_length=50)],
    engine: EngineDep,
    settings: SettingsDep,
    principal: Reader,
    days: Annotated[int, Query(ge=1, le=90, description="Days of expected completions, today first")] = 28,
    top: Annotated[int, Query(ge=1, le=200, description="Riskiest running instances listed")] = 20,
) -> TemplateForecast:
    """Every running instance of the template forecast (decision 0021): how many are at risk, the
    riskiest first, the mean chance of success, and the expected completions per day for the next weeks."""
    return await forecasts.template_forecast(code, principal, engine, settings, days=days, top=top)


@router.post("/forecast-watch", response_model=WatchResult)
async def run_forecast_watch(gateway: GatewayDep, settings: SettingsDep, principal: Operator) -> WatchResult:
    """Run the forecast watch now (it also runs every TRELLIS_FORECAST_WATCH_SECONDS): every running
    instance's forecast refreshed for the list's risk order, and early warnings raised."""
    return await forecasts.run_watch(principal, gateway, settings)


@router.get("/automation", response_model=AutomationAnalytics)
async def automation_figures(
    engine: EngineDep, _: Reader, rule_id: uuid.UUID | None = None, from_ts: From = None, to_ts: To = None
) -> AutomationAnalytics:
    """Per rule: executions by outcome, failures and skips by reason, p50/p95 from the event to the
    chain's end; webhook deliveries, dead letters and redeliveries. Executions started in the window."""
    commands.check_window(from_ts, to_ts)
    return await automation_analytics(engine, rule_id=rule_id, from_ts=from_ts, to_ts=to_ts)


@router.get("/agents", response_model=AgentsAnalytics)
async def agent_figures(
    engine: EngineDep,
    settings: SettingsDep,
    principal: Reader,
    from_ts: From = None,
    to_ts: To = None,
    session_id: Annotated[str | None, Query(max_length=100)] = None,
    agent: Annotated[str | None, Query(max_length=100)] = None,
    top: Annotated[int, Query(ge=1, le=500, description="Sessions listed, costliest first")] = 50,
) -> AgentsAnalytics:
    """Agent calls made in the window: per agent and model (calls, invalid outputs, errors, latency
    p50/p95, tokens, cost), per day and per session."""
    return await commands.agent_figures(
        principal, engine, settings, from_ts=from_ts, to_ts=to_ts, session_id=session_id, agent=agent, top=top
    )


@router.get("/queue", response_model=QueueAnalytics)
async def queue_figures(engine: EngineDep, _: Reader, from_ts: From = None, to_ts: To = None) -> QueueAnalytics:
    """Work items created in the window: by status, priority label and definition;
    time to complete; snooze and skip rates."""
    commands.check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        return await queue_analytics(conn, from_ts=from_ts, to_ts=to_ts)
