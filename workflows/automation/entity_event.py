"""Entity event: the rules of one event run one after the other, as children, in execution_order.

The outbox dispatcher starts it (``entity-event-<event id>``) when an event matches several rules,
with the runs matched and claimed already; an event matching one rule starts that rule's chain
directly. Histories recorded before carry no runs: the workflow then matches with an activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.automation.chains import AutomationActivities
    from core.automation.rules import ChainInput, EventRef, ScheduledInput
    from core.platform.public_text import PublicText
    from workflows.automation.chain import (
        AutomationChainWorkflow,
        chain_attributes,
        chain_summary,
        chain_workflow_id,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))


def event_workflow_id(event_id: str) -> str:
    return f"entity-event-{event_id}"


async def run_chains(runs: list[ChainInput]) -> int:
    """Run each matched rule as its own child workflow, one after the other."""
    for run in runs:
        await workflow.execute_child_workflow(
            AutomationChainWorkflow.run,
            run,
            id=chain_workflow_id(run.rule.id, run.event.id),
            search_attributes=chain_attributes(run),
            static_summary=PublicText(chain_summary(run)),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
    return len(runs)


@workflow.defn(name="EntityEvent")
class EntityEventWorkflow:
    @workflow.run
    async def run(self, ref: EventRef) -> int:
        if ref.runs is not None:
            return await run_chains(ref.runs)
        matches = await workflow.execute_local_activity_method(
            AutomationActivities.match, ref, start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        return await run_chains(matches.runs)


@workflow.defn(name="ScheduledRule")
class ScheduledRuleWorkflow:
    """Started by the rule's Temporal Schedule (``automation-schedule-<rule id>``)."""

    @workflow.run
    async def run(self, data: ScheduledInput) -> int:
        matches = await workflow.execute_local_activity_method(
            AutomationActivities.scheduled_event,
            data,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        return await run_chains(matches.runs)
