"""Worker composition root: builds the client, the engine and the activity objects, registers
every workflow and activity, and polls the task queue until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.agents.llm import LlmActivities
from activities.agents.sessions import SessionActivities
from activities.automation.actions import ActionActivities
from activities.automation.chains import AutomationActivities
from activities.automation.registry import activities_of
from activities.process.state_entry import ProcessActivities
from activities.steps.events import EventDelivery
from activities.steps.records import StepRunActivities
from activities.steps.tools import StepToolActivities, tool_activities
from activities.work.items import WorkActivities
from core.automation.evaluator import ConditionEvaluator
from core.entities.contracts import limits_of
from core.platform.database import make_engine
from core.platform.migrate import upgrade_database_async
from core.platform.search_attributes import ensure_search_attributes
from core.platform.settings import Settings, get_settings
from core.platform.temporal import connect_client
from core.steps.mcp import McpCatalogue
from core.work import store as work_store
from workflows.agents.session import AgentSessionWorkflow
from workflows.automation.chain import AutomationChainWorkflow
from workflows.automation.dispatcher import OutboxDispatcher, OutboxSubscriber
from workflows.automation.entity_event import EntityEventWorkflow, ScheduledRuleWorkflow
from workflows.automation.redelivery import WebhookRedeliveryWorkflow
from workflows.automation.schedules import reconcile_schedules
from workflows.process.instance import ProcessInstanceWorkflow
from workflows.steps.interpreter import StepWorkflowRun
from workflows.work.item import WorkItemWorkflow
from workflows.work.signals import WorkSignalsWorkflow, ensure_daily_schedule

logger = logging.getLogger("trellis.worker")

# The sandbox still checks every workflow for non-determinism (restricted calls), but passes every
# module through instead of re-importing the workflow modules and their imports for each new run:
# measured as the largest per-start cost of the worker (docs/decisions/0005-workflow-sandbox-passthrough.md).
# Workflow modules keep no mutable module-level state, which is what makes sharing them safe.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


# Every workflow type, once: the worker registers them and the replay tests replay them.
WORKFLOWS = (
    ProcessInstanceWorkflow,
    EntityEventWorkflow,
    ScheduledRuleWorkflow,
    AutomationChainWorkflow,
    WebhookRedeliveryWorkflow,
    AgentSessionWorkflow,
    WorkItemWorkflow,
    WorkSignalsWorkflow,
    StepWorkflowRun,
)


def outbox_subscribers(client: Client) -> tuple[OutboxSubscriber, ...]:
    """Readers of the entity outbox besides automation's rules, wired here so no domain imports
    another: the work queue's rescoring, and external events delivered to waiting step executions."""
    return (work_store.rescore_on_events, EventDelivery(client))


def build_worker(
    client: Client,
    engine: AsyncEngine,
    task_queue: str,
    settings: Settings | None = None,
    evaluator: ConditionEvaluator | None = None,
) -> Worker:
    """Every Trellis workflow and activity on one task queue (tests build theirs the same way)."""
    settings = settings or get_settings()
    evaluator = evaluator or condition_evaluator(settings)
    process = ProcessActivities(engine, limits_of(settings))
    automation = AutomationActivities(engine, settings, evaluator)
    actions = ActionActivities(engine, settings)
    llm = LlmActivities(engine, settings)
    sessions = SessionActivities(engine)
    work = WorkActivities(engine, settings.entity_max_bytes)
    steps = StepRunActivities(engine, settings, evaluator)
    tools = StepToolActivities(engine, settings, McpCatalogue(settings))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            process.enter_state,
            process.record_approval,
            automation.match,
            automation.scheduled_event,
            automation.claim,
            automation.finish,
            automation.dead_letter,
            *activities_of(actions),
            actions.redeliver_webhook,
            llm.call_agent,
            sessions.record,
            work.record,
            work.interpret,
            work.mark_started,
            steps.begin,
            steps.record,
            steps.finish,
            steps.condition,
            steps.wait_begin,
            steps.wait_end,
            steps.task_open,
            steps.task_change,
            steps.agent,
            steps.definition,
            steps.start_workflow,
            *tool_activities(tools).values(),
        ],
        max_concurrent_local_activities=100,
        max_cached_workflows=settings.worker_cached_workflows,
        workflow_runner=WORKFLOW_RUNNER,
    )


def condition_evaluator(settings: Settings) -> ConditionEvaluator:
    return ConditionEvaluator(settings.condition_timeout_seconds, settings.condition_max_input_bytes)


async def run_worker(settings: Settings) -> None:
    if not settings.database_url:
        raise SystemExit("TRELLIS_DATABASE_URL is not set: start Trellis with `make run`, or point it at a Postgres")
    await upgrade_database_async(settings.database_url)
    client = await connect_client(settings)
    if settings.search_attributes:  # off for servers that cannot register custom ones (the test server)
        added = await ensure_search_attributes(client, settings.temporal_namespace)
        if added:
            logger.info("registered search attributes: %s", ", ".join(added))
    engine = make_engine(settings.database_url)
    evaluator = condition_evaluator(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        reconciled = await reconcile_schedules(client, engine, settings.task_queue)
        logger.info("reconciled %d rule schedules", reconciled)
        await ensure_daily_schedule(client, settings.task_queue)
        dispatcher = asyncio.create_task(
            OutboxDispatcher(engine, client, settings, evaluator, outbox_subscribers(client)).run(stop)
        )
        async with build_worker(client, engine, settings.task_queue, settings, evaluator):
            logger.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
        await dispatcher
    finally:
        await engine.dispose()
        evaluator.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvloop: measured about 10% less worker CPU per transition than the default loop.
    uvloop.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
