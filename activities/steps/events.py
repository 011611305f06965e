"""Delivery of external events to the step executions waiting on them: an outbox subscriber (run by the
dispatcher in every worker, in the transaction that marks the events dispatched).

For each ``external_event`` row it signals every execution registered in ``workflow_event_waits`` for
that (source, key). A signal carries the event's id, and the interpreter ignores an id it has seen, so
the redelivery after a crash (the rows are still undispatched) changes nothing. An execution that has
closed meanwhile is skipped. An event posted before an execution starts waiting is not delivered to it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.entities.contracts import EntityEventData
from core.steps import store
from core.steps.contracts import EXTERNAL_EVENT_SIGNAL, ExternalEvent


class EventDelivery:
    """Built with the worker's Temporal client; called as an outbox subscriber."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def __call__(self, conn: AsyncConnection, events: list[EntityEventData]) -> None:
        external = [e for e in events if e.event_kind == "external_event" and isinstance(e.new_value, dict)]
        keyed = [(e, e.new_value.get("key")) for e in external]
        pairs = [(e.entity_type, key) for e, key in keyed if isinstance(key, str)]
        waiting = await store.waiting_on(conn, pairs)
        for event, key in keyed:
            for source, wanted, workflow_id in waiting:
                if source != event.entity_type or wanted != key:
                    continue
                signal = ExternalEvent(
                    event_id=event.id,
                    source=source,
                    key=key,
                    payload=event.new_value.get("payload") or {},
                    received_ts=event.created_ts,
                )
                try:
                    await self._client.get_workflow_handle(workflow_id).signal(EXTERNAL_EVENT_SIGNAL, signal)
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise  # the batch is retried: nothing is marked dispatched
