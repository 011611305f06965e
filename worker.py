"""Worker composition root: builds the client, the engine and the activity objects, registers
every workflow and activity, and polls the task queue until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from core.automation.evaluator import ConditionEvaluator
from core.platform import heap
from core.platform.database import make_engine
from core.platform.migrate import upgrade_database_async
from core.platform.search_attributes import ensure_search_attributes
from core.platform.settings import Settings, get_settings
from core.platform.temporal import connect_client
from workflows.agents import bundle as agents
from workflows.automation import bundle as automation
from workflows.automation.dispatcher import OutboxDispatcher
from workflows.automation.schedules import reconcile_schedules
from workflows.bundles import DomainBundle, OutboxSubscriber
from workflows.policy import bundle as policy
from workflows.process import bundle as process
from workflows.process.watch import ensure_watch_schedule
from workflows.steps import bundle as steps
from workflows.work import bundle as work
from workflows.work.signals import ensure_daily_schedule

logger = logging.getLogger("trellis.worker")


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Unsandboxed unless ``workflow_sandbox`` is on (the test suite turns it on): the sandbox cost about
    a quarter of the worker's CPU under load (docs/decisions/0026-workflows-unsandboxed-in-the-worker.md).
    Sandboxed, it checks every workflow for non-deterministic calls but passes every module through
    instead of re-importing the workflow modules for each new run (decision 0005). Workflow modules keep
    no mutable module-level state, which is what makes sharing them safe either way."""
    if settings.workflow_sandbox:
        return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())
    return UnsandboxedWorkflowRunner()


# Every workflow type, once: the bundles register them and the replay tests replay them.
WORKFLOWS: tuple[type, ...] = (
    *process.WORKFLOWS,
    *automation.WORKFLOWS,
    *agents.WORKFLOWS,
    *work.WORKFLOWS,
    *steps.WORKFLOWS,
    *policy.WORKFLOWS,
)


def domain_bundles(
    client: Client, engine: AsyncEngine, settings: Settings, evaluator: ConditionEvaluator
) -> list[DomainBundle]:
    """Each domain's workflows, activities and outbox readers, built over the worker's resources."""
    return [
        process.bundle(engine, settings),
        automation.bundle(engine, settings, evaluator),
        agents.bundle(engine, settings),
        work.bundle(engine, settings),
        steps.bundle(client, engine, settings, evaluator),
        policy.bundle(engine),
    ]


def outbox_subscribers(bundles: list[DomainBundle]) -> tuple[OutboxSubscriber, ...]:
    """Readers of the entity outbox besides automation's rules, from the bundles, so no domain imports
    another: the work queue's rescoring, and external events delivered to waiting step executions."""
    return tuple(subscriber for b in bundles for subscriber in b.outbox_subscribers)


def build_worker(
    client: Client,
    engine: AsyncEngine,
    task_queue: str,
    settings: Settings | None = None,
    evaluator: ConditionEvaluator | None = None,
    bundles: list[DomainBundle] | None = None,
) -> Worker:
    """Every Trellis workflow and activity on one task queue, composed from the domain bundles (tests
    build theirs the same way)."""
    settings = settings or get_settings()
    evaluator = evaluator or condition_evaluator(settings)
    bundles = bundles if bundles is not None else domain_bundles(client, engine, settings, evaluator)
    return Worker(
        client,
        task_queue=task_queue,
        plugins=[b.plugin() for b in bundles],
        max_concurrent_local_activities=100,
        max_cached_workflows=settings.worker_cached_workflows,
        workflow_runner=workflow_runner(settings),
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
        await ensure_watch_schedule(
            client, settings.task_queue, settings.forecast_watch_seconds, settings.forecast_min_visits
        )
        bundles = domain_bundles(client, engine, settings, evaluator)
        dispatcher = asyncio.create_task(
            OutboxDispatcher(engine, client, settings, evaluator, outbox_subscribers(bundles)).run(stop)
        )
        async with build_worker(client, engine, settings.task_queue, settings, evaluator, bundles):
            logger.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
            heap.settle()
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
