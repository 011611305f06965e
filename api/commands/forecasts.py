"""Forecasts (issue 26): one running instance's, a template's (its running instances by risk and the
expected completions per day), the watch on demand, and taking note of an early warning. Shared by the
API's routes, the console's pages and the inbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.process.forecasts import WatchInput
from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import Gateway
from core.platform.settings import Settings
from core.process import forecast_data
from core.process.forecast import Forecast, completions_per_day
from core.process.forecast_data import WatchResult
from core.process.tables import ForecastWarning, GraphData
from workflows.process.watch import ForecastWatchWorkflow


class DayForecast(BaseModel):
    day: datetime
    completions: float = Field(description="Expected instances finishing that day (any outcome)")
    successes: float = Field(description="Of those, expected to finish in a success state")


class VersionForecast(BaseModel):
    version: int
    running: int
    uncertain: bool
    reasons: list[str]


class TemplateForecast(BaseModel):
    template_code: str
    as_of: datetime
    running: int
    at_risk: int = Field(description="Running instances with risk of at least 0.5")
    expected_success_rate: float | None = Field(description="Mean success probability of the running instances")
    versions: list[VersionForecast]
    per_day: list[DayForecast] = Field(description="Expected completions per day, today first")
    riskiest: list[Forecast] = Field(description="The running instances with the highest risk")


def _model_settings(settings: Settings) -> tuple[int, float]:
    return settings.forecast_min_visits, settings.forecast_model_seconds


async def instance_forecast(
    instance_id: uuid.UUID, principal: Principal, engine: AsyncEngine, settings: Settings
) -> Forecast:
    """The forecast of a running instance (409 once it has finished: there is nothing left to forecast)."""
    allow(principal, *READERS)
    now = datetime.now(UTC)
    min_visits, ttl = _model_settings(settings)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(GraphData.template_code, GraphData.template_version, GraphData.workflow_status).where(
                    GraphData.id == instance_id
                )
            )
        ).first()
        if row is None:
            raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
        if row.workflow_status != "active":
            raise ApiError(409, "not_running", f"instance {instance_id} is {row.workflow_status}: nothing to forecast")
        model = await forecast_data.current_model(
            conn, row.template_code, row.template_version, min_visits=min_visits, ttl=ttl
        )
        runs = await forecast_data.running(conn, row.template_code, row.template_version, now, only=instance_id)
    runs = forecast_data.forecastable(model, runs) if model is not None else []
    if model is None or not runs:
        raise ApiError(409, "not_running", f"instance {instance_id} has no recorded state to forecast from")
    return forecast_data.forecast_of(model, runs[0], now)


async def template_forecast(
    code: str, principal: Principal, engine: AsyncEngine, settings: Settings, *, days: int = 28, top: int = 20
) -> TemplateForecast:
    """Every running instance of the template forecast: how many are at risk, the riskiest, and the
    expected completions per day for the next ``days`` days (over every version with running ones)."""
    allow(principal, *READERS)
    now = datetime.now(UTC)
    min_visits, ttl = _model_settings(settings)
    forecasts: list[Forecast] = []
    versions: list[VersionForecast] = []
    per_day: dict[datetime, list[float]] = {}
    async with engine.connect() as conn:
        if not await forecast_data.template_exists(conn, code):
            raise ApiError(404, "not_found", f"no template {code}")
        for version in await forecast_data.running_versions(conn, code):
            model = await forecast_data.current_model(conn, code, version, min_visits=min_visits, ttl=ttl)
            if model is None:
                continue
            runs = forecast_data.forecastable(model, await forecast_data.running(conn, code, version, now))
            mine = [forecast_data.forecast_of(model, r, now) for r in runs]
            forecasts.extend(mine)
            reasons = sorted({reason for f in mine for reason in f.reasons})
            versions.append(
                VersionForecast(version=version, running=len(mine), uncertain=bool(reasons), reasons=reasons)
            )
            elapsed = [(r.state_id, (now - r.entered).total_seconds()) for r in runs]
            for day, total, successes in completions_per_day(model, elapsed, now=now, days=days):
                sums = per_day.setdefault(day, [0.0, 0.0])
                sums[0] += total
                sums[1] += successes
    forecasts.sort(key=lambda f: (-f.risk, f.instance_id or ""))
    return TemplateForecast(
        template_code=code,
        as_of=now,
        running=len(forecasts),
        at_risk=sum(1 for f in forecasts if f.risk >= 0.5),
        expected_success_rate=(
            round(sum(f.success_probability for f in forecasts) / len(forecasts), 4) if forecasts else None
        ),
        versions=versions,
        per_day=[
            DayForecast(day=day, completions=round(v[0], 3), successes=round(v[1], 3))
            for day, v in sorted(per_day.items())
        ],
        riskiest=forecasts[:top],
    )


async def run_watch(principal: Principal, gateway: Gateway, settings: Settings) -> WatchResult:
    """Refresh every running instance's forecast and raise due early warnings now (operators)."""
    allow(principal, "operator", doing="run the forecast watch")
    return await gateway.execute(
        ForecastWatchWorkflow.run,
        WatchInput(min_visits=settings.forecast_min_visits),
        workflow_id=f"process-forecast-watch-{uuid.uuid4()}",
    )


async def acknowledge_warning(instance_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> None:
    """Take note of an instance's early warning (its template's owner role, or an admin): it leaves the
    inbox. 404 when the instance has no open warning."""
    allow(principal, *READERS)
    async with engine.begin() as conn:
        warning = (
            await conn.execute(
                select(
                    ForecastWarning.template_code, ForecastWarning.owner_role, ForecastWarning.acknowledged_ts
                ).where(ForecastWarning.instance_id == instance_id)
            )
        ).first()
        if warning is None or warning.acknowledged_ts is not None:
            raise ApiError(404, "not_found", f"instance {instance_id} has no open early warning")
        if principal.role not in ("admin", warning.owner_role):
            raise ApiError(403, "forbidden", f"early warnings of {warning.template_code} are for {warning.owner_role}")
        await conn.execute(
            update(ForecastWarning)
            .where(ForecastWarning.instance_id == instance_id)
            .values(acknowledged_by=principal.name, acknowledged_ts=datetime.now(UTC))
        )
