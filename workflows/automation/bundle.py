"""The automation domain's part of the worker: entity-event and scheduled-rule workflows, chains,
webhook redelivery, the chains' bookkeeping, and every rule action automation performs itself (from the
action registry, so a new action is registered by declaring it there)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.automation.actions import ActionActivities
from activities.automation.chains import AutomationActivities
from activities.automation.registry import activities_of
from core.automation.evaluator import ConditionEvaluator
from core.platform.settings import Settings
from workflows.automation.chain import AutomationChainWorkflow
from workflows.automation.entity_event import EntityEventWorkflow, ScheduledRuleWorkflow
from workflows.automation.redelivery import WebhookRedeliveryWorkflow
from workflows.bundles import DomainBundle

WORKFLOWS: tuple[type, ...] = (
    EntityEventWorkflow,
    ScheduledRuleWorkflow,
    AutomationChainWorkflow,
    WebhookRedeliveryWorkflow,
)


def bundle(engine: AsyncEngine, settings: Settings, evaluator: ConditionEvaluator) -> DomainBundle:
    chains = AutomationActivities(engine, settings, evaluator)
    actions = ActionActivities(engine, settings)
    return DomainBundle(
        "automation",
        WORKFLOWS,
        [
            chains.match,
            chains.scheduled_event,
            chains.claim,
            chains.finish,
            chains.dead_letter,
            *activities_of(actions),
            actions.redeliver_webhook,
        ],
    )
