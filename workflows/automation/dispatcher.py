"""Outbox dispatcher, run inside every worker process: entity events become rule runs.

For a batch of undispatched ``f_entity_event`` rows (``FOR UPDATE SKIP LOCKED``, so several workers
share the work) it matches the rules itself (the seed's query, the field filter, CEL, the loop guard).
An event that one rule matches (the common case) has that run claimed against ``max_executions`` in a
transaction committed before anything starts, and its chain ``automation-<rule>-<event>`` started with
eager start (the first workflow task runs in this worker, without a round trip through a poll). An
event that several rules match starts ``entity-event-<event>``, which runs their chains one after the
other in execution_order, each claiming in its turn. Last it marks the rows dispatched, still under
the row lock taken first.

Crash-safety: a crash before the claims commit leaves nothing; after it, the rows are still
undispatched, the repeated claim returns the recorded answer and the fixed workflow ids make a
repeated start a no-op. No event is lost and none runs twice. Postgres NOTIFY (psycopg) wakes it on
commit; a slow poll covers missed wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.automation.chains import webhook_retry
from core.automation import matching, store
from core.automation.evaluator import ConditionEvaluator
from core.automation.rules import ChainInput, EventRef
from core.entities.contracts import EntityEventData
from core.entities.store import OUTBOX_CHANNEL
from core.platform import telemetry
from core.platform.database import libpq_url
from core.platform.public_text import PublicText
from core.platform.settings import Settings
from workflows.automation.chain import AutomationChainWorkflow, chain_attributes, chain_summary, chain_workflow_id
from workflows.automation.entity_event import EntityEventWorkflow, event_workflow_id
from workflows.bundles import OutboxSubscriber

logger = logging.getLogger("trellis.dispatcher")
BATCH = 200


@dataclass(frozen=True)
class _Start:
    """What one event starts: its one chain, or its entity-event workflow for several."""

    workflow_id: str
    runs: list[ChainInput]


class OutboxDispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        client: Client,
        settings: Settings,
        evaluator: ConditionEvaluator | None = None,
        subscribers: Sequence[OutboxSubscriber] = (),
    ) -> None:
        self._engine = engine
        self._subscribers = list(subscribers)
        self._client = client
        self._settings = settings
        self._evaluator = evaluator or ConditionEvaluator(
            settings.condition_timeout_seconds, settings.condition_max_input_bytes
        )
        self._wake = asyncio.Event()
        self._starts = asyncio.Semaphore(32)

    async def run(self, stop: asyncio.Event) -> None:
        await self._evaluator.start()
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                # Cleared before the batch, so a NOTIFY that arrives during it wakes the next one at once.
                self._wake.clear()
                try:
                    handled = await self.dispatch_batch()
                except Exception:  # keep dispatching through a database or Temporal hiccup
                    logger.exception("outbox dispatch failed; retrying")
                    handled = 0
                    await asyncio.sleep(1.0)
                if handled >= BATCH:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(self._wake.wait(), stop.wait()), timeout=self._settings.dispatcher_poll_seconds
                    )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on the outbox channel over a dedicated psycopg connection; reconnect after a failure
        (the poll keeps events moving meanwhile)."""
        assert self._settings.database_url is not None
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self._settings.database_url), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self._wake.set()  # catch up with whatever was committed while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error:
                logger.warning("outbox LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)

    async def dispatch_batch(self) -> int:
        async with self._engine.begin() as locked:
            rows = await store.take_undispatched(locked, BATCH)  # marked dispatched when this commits
            if not rows:
                return 0
            read = _read(rows)  # the unreadable ones are dispatched too: to nobody
            events = [event for _, event in read]
            starts = await self._claim(locked, events, [event.id for row, event in read if row.claimed_before])
            await asyncio.gather(*(self._start(s) for s in starts))
            for subscriber in self._subscribers:
                await subscriber(locked, events)
        return len(rows)

    async def _claim(self, locked: AsyncConnection, events: list[Any], with_claims: list[str]) -> list[_Start]:
        """Match and claim in one committed transaction (a second connection: the rows stay locked).
        ``with_claims``: events with runs claimed by an earlier pass that may not have started. The
        rules are read on the ``locked`` connection: a batch no rule listens to (most of them) opens no
        second transaction (issue 27)."""
        retry = webhook_retry(self._settings)
        starts: list[_Start] = []
        skips: Counter[str] = Counter()  # counted once the transaction commits
        rules = await matching.candidate_rules(locked, [(e.entity_type, e.event_kind) for e in events])
        if not rules and not with_claims:
            return starts  # no rule listens to any of these events: nothing to write
        async with self._engine.begin() as conn:
            claimed_before = await matching.running_claims(conn, with_claims) if with_claims else {}
            for event in events:
                candidates = rules.get((event.entity_type, event.event_kind), [])
                matched, skipped = await matching.match(
                    event, candidates, self._settings.automation_max_depth, self._evaluator
                )
                skips[event.entity_type] += await matching.record_skips(
                    conn, event.id, skipped, event_workflow_id(event.id)
                )
                seen = {rule.id for rule in matched}
                matched += [rule for rule in claimed_before.get(event.id, []) if rule.id not in seen]
                if len(matched) == 1:
                    # The common case: claimed here, and the chain starts straight away.
                    rule = matched[0]
                    claim = await matching.claim(conn, rule.id, event.id, chain_workflow_id(rule.id, event.id))
                    if claim.claimed:
                        run = ChainInput(rule=rule, event=event, webhook_retry=retry, claimed=True)
                        starts.append(_Start(chain_workflow_id(rule.id, event.id), [run]))
                    elif not claim.repeated:
                        skips[event.entity_type] += 1
                elif matched:
                    # Several rules run one after the other: each chain claims when its turn comes, so a
                    # rule's execution starts (and counts) after the rules before it have finished.
                    runs = [ChainInput(rule=rule, event=event, webhook_retry=retry) for rule in matched]
                    starts.append(_Start(event_workflow_id(event.id), runs))
        meter = telemetry.process_meter()
        for entity_type, n in skips.items():
            telemetry.count(meter, telemetry.RULE_EXECUTIONS, {"entity_type": entity_type, "outcome": "skipped"}, n)
        return starts

    async def _start(self, start: _Start) -> None:
        options: dict[str, Any] = {
            "id": start.workflow_id,
            "task_queue": self._settings.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "request_eager_start": True,
        }
        async with self._starts:
            try:
                if len(start.runs) == 1:
                    run = start.runs[0]
                    await self._client.start_workflow(
                        AutomationChainWorkflow.run,
                        run,
                        search_attributes=chain_attributes(run) if self._settings.search_attributes else None,
                        static_summary=PublicText(chain_summary(run)),
                        **options,
                    )
                else:
                    event = start.runs[0].event
                    await self._client.start_workflow(
                        EntityEventWorkflow.run,
                        EventRef(event_id=event.id, runs=start.runs),
                        static_summary=PublicText(f"{event.entity_type} {event.event_kind}: {len(start.runs)} rules"),
                        **options,
                    )
            except WorkflowAlreadyStartedError:
                pass  # dispatched before a crash: the event is already being (or was) processed


def _read(rows: list[Any]) -> list[tuple[Any, EntityEventData]]:
    """Each row that reads as an entity event, with its event. Only the entity store writes the log, so a
    row that does not read is one written around it (by hand, by a script). No retry can make it
    readable, and every event behind it would wait for ever: it is marked dispatched with its batch and
    reported, by id."""
    read = []
    for row in rows:
        try:
            read.append((row, matching.event_of(row)))
        except ValidationError as exc:
            logger.error("outbox event %s cannot be read as an entity event and is skipped: %s", row.id, exc)
    return read


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
