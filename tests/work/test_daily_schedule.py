"""The daily Temporal Schedule that runs the signal interpreter and rescores every open item: created by
the worker, brought in line by the next worker to start (another task queue: the worker process of an
earlier test left it pointing at its own), and when it fires a WorkSignals run completes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    WorkflowExecutionStatus,
)

from workflows.work.signals import SCHEDULE_ID, ensure_daily_schedule


async def test_the_daily_schedule_runs_the_interpreter(temporal_client: Client, task_queue: str, worker: None) -> None:
    await ensure_daily_schedule(temporal_client, "a-queue-no-worker-polls")
    await ensure_daily_schedule(temporal_client, task_queue)  # the next worker's start updates it
    handle = temporal_client.get_schedule_handle(SCHEDULE_ID)
    described = await handle.describe()
    assert described.schedule.spec.intervals[0].every == timedelta(days=1)
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "WorkSignals"
    assert action.task_queue == task_queue
    try:
        await handle.trigger()
        for _ in range(200):
            described = await handle.describe()
            if described.info.recent_actions:
                break
            await asyncio.sleep(0.1)
        run = described.info.recent_actions[-1].action
        assert isinstance(run, ScheduleActionExecutionStartWorkflow)
        result = temporal_client.get_workflow_handle(run.workflow_id, run_id=run.first_execution_run_id)
        await asyncio.wait_for(result.result(), timeout=60)
        assert (await result.describe()).status == WorkflowExecutionStatus.COMPLETED
    finally:
        await handle.delete()
