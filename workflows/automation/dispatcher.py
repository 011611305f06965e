"""Outbox dispatcher, run inside every worker process.

It takes undispatched rows of ``f_entity_event`` (``FOR UPDATE SKIP LOCKED``, so several workers share
the work), starts an ``entity-event-<event id>`` workflow for each event that some active rule
listens for, and marks the rows dispatched in the same transaction. A crash between the start and the
commit re-dispatches the rows, and the fixed workflow id turns the second start into a no-op: no event
is lost and none runs twice. Postgres NOTIFY wakes it on commit; a slow poll covers missed wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.automation.rules import EventRef
from core.automation.tables import WorkflowAutomation
from core.entities.store import OUTBOX_CHANNEL
from core.entities.tables import EntityEvent
from core.platform.settings import Settings
from workflows.automation.entity_event import EntityEventWorkflow, event_workflow_id

logger = logging.getLogger("trellis.dispatcher")
BATCH = 200


class OutboxDispatcher:
    def __init__(self, engine: AsyncEngine, client: Client, settings: Settings) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._wake = asyncio.Event()
        self._starts = asyncio.Semaphore(32)

    async def run(self, stop: asyncio.Event) -> None:
        async with self._engine.connect() as listener:
            raw: Any = (await listener.get_raw_connection()).driver_connection

            def wake(*_: object) -> None:
                self._wake.set()

            await raw.add_listener(OUTBOX_CHANNEL, wake)
            try:
                while not stop.is_set():
                    try:
                        handled = await self.dispatch_batch()
                    except Exception:  # keep dispatching through a database or Temporal hiccup
                        logger.exception("outbox dispatch failed; retrying")
                        handled = 0
                        await asyncio.sleep(1.0)
                    if handled >= BATCH:
                        continue
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            _first(self._wake.wait(), stop.wait()), timeout=self._settings.dispatcher_poll_seconds
                        )
            finally:
                await raw.remove_listener(OUTBOX_CHANNEL, wake)

    async def dispatch_batch(self) -> int:
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(EntityEvent.id, EntityEvent.entity_type, EntityEvent.event_kind)
                    .where(EntityEvent.dispatched_ts.is_(None))
                    .order_by(EntityEvent.created_ts)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            listened = {
                (r.trigger_entity_type, r.trigger_action_type)
                for r in await conn.execute(
                    select(WorkflowAutomation.trigger_entity_type, WorkflowAutomation.trigger_action_type)
                    .where(WorkflowAutomation.active_flag.is_(True))
                    .distinct()
                )
            }
            wanted = [r for r in rows if (r.entity_type, r.event_kind) in listened]
            await asyncio.gather(*(self._start(str(r.id)) for r in wanted))
            await conn.execute(
                update(EntityEvent).where(EntityEvent.id.in_([r.id for r in rows])).values(dispatched_ts=func.now())
            )
        return len(rows)

    async def _start(self, event_id: str) -> None:
        async with self._starts:
            try:
                await self._client.start_workflow(
                    EntityEventWorkflow.run,
                    EventRef(event_id=event_id),
                    id=event_workflow_id(event_id),
                    task_queue=self._settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                pass  # dispatched before a crash: the event is already being (or was) processed


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
