"""The signal interpreter and daily rescore as a workflow, ``work-signals-…``: run by the daily
Temporal Schedule ``work-signals-daily`` and on demand (POST /api/v1/orchestrator/signals/interpret).
It creates the items the entities' signals call for, rescores every open item (the seed's
``update_all_workflow_priorities``), and starts each new item's workflow as an abandoned child, so a
crash anywhere leaves nothing half done: creating is idempotent, and an item whose workflow was not
started is started by the next run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.work.items import InterpretInput, InterpretOutput, StartedInput, WorkActivities
    from core.platform.temporal import ensure_schedule
    from core.work.contracts import InterpretResult, SignalsInput
    from core.work.store import item_workflow_id
    from workflows.work.item import WorkItemWorkflow

SCHEDULE_ID = "work-signals-daily"


@workflow.defn(name="WorkSignals")
class WorkSignalsWorkflow:
    @workflow.run
    async def run(self, data: SignalsInput) -> InterpretResult:
        out: InterpretOutput = await workflow.execute_activity_method(
            WorkActivities.interpret,
            InterpretInput(now=workflow.now()),
            start_to_close_timeout=timedelta(minutes=10),
        )
        started = []
        for item in out.items:
            try:
                await workflow.start_child_workflow(
                    WorkItemWorkflow.run,
                    item,
                    id=item_workflow_id(item.item_id),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
            except WorkflowAlreadyStartedError:
                pass
            started.append(item.item_id)
        await workflow.execute_activity_method(
            WorkActivities.mark_started, StartedInput(ids=started), start_to_close_timeout=timedelta(seconds=60)
        )
        return InterpretResult(workflow_id=workflow.info().workflow_id, entities=out.entities, created=started)


async def ensure_daily_schedule(client: Client, task_queue: str) -> None:
    """The daily run: created, or brought in line (a worker on another task queue, a changed action)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            WorkSignalsWorkflow.run, SignalsInput(), id="work-signals-daily-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
    )
    await ensure_schedule(client, SCHEDULE_ID, schedule, what="the signal interpreter")
