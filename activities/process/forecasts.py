"""The forecast watch's activity: every running instance forecast and kept, early warnings recorded and
their owner roles notified, in one transaction (a retry finds the warnings recorded and notifies no
one twice)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications
from core.process.forecast_data import WatchResult, watch


class WatchInput(BaseModel):
    min_visits: int = 30


class ForecastActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="process.forecast_watch")
    async def watch(self, data: WatchInput) -> WatchResult:
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            result, warned = await watch(conn, min_visits=data.min_visits, now=now)
            for code, owner, forecast in warned:
                chance = round(100 * (forecast.on_time_probability or 0))
                due = forecast.deadline.isoformat() if forecast.deadline else "its deadline"
                notice = NotificationSpec(
                    recipient=owner,
                    template="deadline_at_risk",
                    subject=f"At risk: {code} instance {forecast.instance_id} ({chance}% to finish by {due})",
                    body=(
                        f"Instance {forecast.instance_id} of {code} has a {chance}% chance to finish by {due}, "
                        f"below the template's threshold. Expected to finish in "
                        f"{forecast.remaining_p50_seconds / 86400:.1f} days (p90 "
                        f"{forecast.remaining_p90_seconds / 86400:.1f})."
                    ),
                )
                await insert_notifications(
                    conn,
                    [notice],
                    dedupe_prefix=f"forecast:{forecast.instance_id}",
                    source=f"process:{forecast.instance_id}",
                    entity_id=None,
                    ts=now,
                )
        return result
