"""Worker composition root: builds the client, the engine and the activity objects, registers
every workflow and activity, and polls the task queue until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.process import ProcessActivities
from core.db import make_engine
from core.migrate import upgrade_database_async
from core.search_attributes import ensure_search_attributes
from core.settings import Settings, get_settings
from core.temporal import connect_client
from workflows.process_instance import ProcessInstanceWorkflow

logger = logging.getLogger("trellis.worker")


def build_worker(client: Client, engine: AsyncEngine, task_queue: str) -> Worker:
    """Every Trellis workflow and activity on one task queue (tests build theirs the same way)."""
    process = ProcessActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ProcessInstanceWorkflow],
        activities=[process.enter_state, process.record_approval],
        max_concurrent_local_activities=100,
    )


async def run_worker(settings: Settings) -> None:
    if not settings.database_url:
        raise SystemExit("TRELLIS_DATABASE_URL is not set: start Trellis with `make run`, or point it at a Postgres")
    await upgrade_database_async(settings.database_url)
    client = await connect_client(settings)
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if added:
        logger.info("registered search attributes: %s", ", ".join(added))
    engine = make_engine(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with build_worker(client, engine, settings.task_queue):
            logger.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
    finally:
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
