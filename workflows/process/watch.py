"""The forecast watch, ``ForecastWatch``: run by the Temporal Schedule ``process-forecast-watch`` every
``forecast_watch_seconds`` and on demand (POST /api/v1/forecasts/watch). One activity forecasts every
running instance, keeps the forecasts the instance list sorts by risk, and raises the early warnings
(issue 26)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

with workflow.unsafe.imports_passed_through():
    from activities.process.forecasts import ForecastActivities, WatchInput
    from core.platform.temporal import ensure_schedule
    from core.process.forecast_data import WatchResult

SCHEDULE_ID = "process-forecast-watch"


@workflow.defn(name="ForecastWatch")
class ForecastWatchWorkflow:
    @workflow.run
    async def run(self, data: WatchInput) -> WatchResult:
        result = await workflow.execute_activity_method(
            ForecastActivities.watch, data, start_to_close_timeout=timedelta(minutes=10)
        )
        return result.model_copy(update={"workflow_id": workflow.info().workflow_id})


async def ensure_watch_schedule(client: Client, task_queue: str, every_seconds: int, min_visits: int) -> None:
    """The periodic watch: created, or brought in line with the settings."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ForecastWatchWorkflow.run,
            WatchInput(min_visits=min_visits),
            id="process-forecast-watch-run",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await ensure_schedule(client, SCHEDULE_ID, schedule, what="the forecast watch")
