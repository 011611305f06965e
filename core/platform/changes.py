"""Live changes for the console: Postgres sends ``NOTIFY trellis_changes`` when a projection the
console shows is written (migration 0015: the table and the run it concerns, never data); each API
process holds one LISTEN connection and tells the pages open on it which of their topics changed. A
page then reads again through the same commands and roles as any read, so the feed itself carries
nothing a viewer could not see.

A subscriber keeps a set of changed topics, not a queue, so a page open for an hour (or a slow one)
holds at most its own topics, however much changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable

import psycopg

from core.platform.database import libpq_url

logger = logging.getLogger(__name__)

CHANNEL = "trellis_changes"
TOPIC = re.compile(r"^[a-z][a-z-]{0,30}(:[A-Za-z0-9_.:-]{1,100})?$")
MAX_TOPICS = 20

# Which pages a written row concerns, by table; the key is what the trigger sent (migration 0015).
_TOPICS: dict[str, Callable[[str], list[str]]] = {
    "d_industry_workflow_graph_data": lambda k: ["instances", f"instance:{k}", "overview", "inbox"],
    "workflow_executions": lambda k: ["executions", f"execution:{k}", "overview"],
    "workflow_steps": lambda k: [f"execution:{k}"],
    "workflow_tasks": lambda k: [f"execution:{k}", "inbox"],
    "orchestrator_session": lambda k: ["sessions", f"session:{k}", "inbox"],
    "orchestrator_agent_log": lambda k: [f"session:{k}", "sessions"],
    "work_item": lambda k: ["queue", f"work:{k}", "inbox"],
    "f_webhook_dead_letter": lambda k: ["dead-letters", "overview"],
    "circuit_breakers": lambda k: ["breakers", "overview"],
    "d_notification": lambda k: ["inbox"],
}


def topics_of(payload: str) -> list[str]:
    table, _, key = payload.partition(" ")
    topics = _TOPICS.get(table)
    return topics(key) if topics is not None else []


class Subscriber:
    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        self.changed: set[str] = set()
        self.wake = asyncio.Event()

    def offer(self, topics: list[str]) -> None:
        hit = self.topics.intersection(topics)
        if hit:
            self.changed |= hit
            self.wake.set()

    def take(self) -> set[str]:
        taken, self.changed = self.changed, set()
        self.wake.clear()
        return taken


class ChangeFeed:
    """One LISTEN connection per process, started by the first subscriber, reconnecting after a
    failure (a page that missed changes meanwhile is told everything changed)."""

    def __init__(self, database_url: str) -> None:
        self._url = libpq_url(database_url)
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._connected_before = False

    @contextlib.asynccontextmanager
    async def subscribe(self, topics: set[str]) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(topics)
        self._subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self._connected_before:  # whatever happened while not listening: read everything again
                        for subscriber in list(self._subscribers):
                            subscriber.offer(list(subscriber.topics))
                    self._connected_before = True
                    async for note in conn.notifies():
                        topics = topics_of(note.payload)
                        for subscriber in list(self._subscribers):
                            subscriber.offer(topics)
            except psycopg.Error:
                logger.warning("change feed LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
