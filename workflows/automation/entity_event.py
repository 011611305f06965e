"""Entity event: started by the outbox dispatcher with the event id in its workflow id, it finds the
matching rules (ordered by execution_order) and runs one AutomationChain child per rule, in order."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.automation.chains import AutomationActivities
    from core.automation.rules import ChainInput, EventRef, MatchResult, ScheduledInput
    from core.platform import search_attributes as sa
    from workflows.automation.chain import AutomationChainWorkflow, chain_workflow_id

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))


def event_workflow_id(event_id: str) -> str:
    return f"entity-event-{event_id}"


async def run_chains(matches: MatchResult) -> int:
    """Run each matched rule as its own child workflow, one after the other."""
    for run in matches.runs:
        await workflow.execute_child_workflow(
            AutomationChainWorkflow.run,
            run,
            id=chain_workflow_id(run.rule.id, run.event["id"]),
            search_attributes=_attributes(run),
            static_summary=f"{run.rule.workflow_name}: {run.event['entity_type']} {run.event['event_kind']}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
    return len(matches.runs)


def _attributes(run: ChainInput) -> TypedSearchAttributes:
    pairs = [
        SearchAttributePair(sa.RULE_ID, run.rule.id),
        SearchAttributePair(sa.ENTITY_TYPE, run.event["entity_type"]),
        SearchAttributePair(sa.TRIGGER, run.event["event_kind"]),
    ]
    if run.event.get("entity_id"):
        pairs.append(SearchAttributePair(sa.ENTITY_ID, run.event["entity_id"]))
    return TypedSearchAttributes(pairs)


@workflow.defn(name="EntityEvent")
class EntityEventWorkflow:
    @workflow.run
    async def run(self, ref: EventRef) -> int:
        matches = await workflow.execute_local_activity_method(
            AutomationActivities.match, ref, start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        return await run_chains(matches)


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
        return await run_chains(matches)
