"""The step workflows' part of the worker: the interpreter, its bookkeeping activities, every step tool
(from the tool registry, MCP tools through one activity), and delivering external events to waiting
executions (an outbox reader)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.steps.acting import ActingActivities
from activities.steps.events import EventDelivery
from activities.steps.records import StepRunActivities
from activities.steps.tools import StepToolActivities, tool_activities
from core.automation.evaluator import ConditionEvaluator
from core.platform.settings import Settings
from core.steps.catalogue import Catalogue
from core.steps.mcp import McpCatalogue
from workflows.bundles import DomainBundle
from workflows.steps.acting import AgentActingWorkflow
from workflows.steps.interpreter import StepWorkflowRun

WORKFLOWS: tuple[type, ...] = (StepWorkflowRun, AgentActingWorkflow)


def bundle(client: Client, engine: AsyncEngine, settings: Settings, evaluator: ConditionEvaluator) -> DomainBundle:
    steps = StepRunActivities(engine, settings, evaluator)
    mcp = McpCatalogue(settings)
    tools = StepToolActivities(engine, settings, mcp)
    acting = ActingActivities(engine, tools, Catalogue(mcp))
    return DomainBundle(
        "steps",
        WORKFLOWS,
        [
            steps.begin,
            steps.record,
            steps.finish,
            steps.pause_change,
            steps.condition,
            steps.wait_begin,
            steps.wait_end,
            steps.task_open,
            steps.task_change,
            steps.agent,
            steps.definition,
            steps.start_workflow,
            *tool_activities(tools).values(),
            tools.policy,
            acting.offer,
            acting.tool,
            acting.delegate,
            acting.delegated,
        ],
        outbox_subscribers=[EventDelivery(client)],
    )
