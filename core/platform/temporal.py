"""The one way Trellis builds a Temporal client (the pydantic data converter, with payload encryption
when TRELLIS_PAYLOAD_KEYS is set; the settings' address and namespace) and the options every start
uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    WithStartWorkflowOperation,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from core.platform import telemetry
from core.platform.codec import data_converter
from core.platform.public_text import PublicText
from core.platform.settings import Settings


async def connect_client(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError(
            "TRELLIS_TEMPORAL_ADDRESS is not set: start Trellis with `make run`, or point it at a Temporal server"
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys),
        runtime=telemetry.runtime(settings),
        # A client interceptor that is also a worker interceptor applies to the workers built on the
        # client too: the trace goes from the caller's span into the workflow and its activities.
        interceptors=telemetry.interceptors(settings),
    )


def start_options(
    settings: Settings,
    workflow_id: str,
    search_attributes: Sequence[SearchAttributePair[Any]],
    summary: str,
    task_queue: str | None = None,
) -> dict[str, Any]:
    """How every Trellis workflow is started, by the API's gateway and by activities alike: on the
    settings' task queue (an activity passes the queue its worker polls); a retry with the same id
    joins the running workflow, and a closed workflow's id is never reused (so a late retry cannot
    start a second run of finished work); search attributes left out when the settings turn them off
    (a server that cannot register custom ones)."""
    pairs = list(search_attributes) if settings.search_attributes else []
    return {
        "id": workflow_id,
        "task_queue": task_queue or settings.task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "search_attributes": TypedSearchAttributes(pairs),
        "static_summary": PublicText(summary),
    }


def retrieve_start_error(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """Mark a failed update-with-start's start error as seen. The SDK raises it from the call and also
    sets it on the operation's handle future, which nobody awaits: asyncio would log "Future exception
    was never retrieved" with a traceback for every refused or timed-out call. Call it in a ``finally``
    after every ``execute_update_with_start_workflow``. The SDK's only accessor awaits, so this reads
    the future itself; should an SDK release rename it, the noise comes back (and the frozen-Temporal
    test fails) rather than every start failing."""
    started = getattr(operation, "_workflow_handle", None)
    if isinstance(started, asyncio.Future) and started.done() and not started.cancelled():
        started.exception()


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule, *, what: str) -> None:
    """Create the Temporal Schedule, or bring an existing one in line (another task queue, a changed
    action or interval). Temporal's time-skipping test server has no schedules: there ``what`` runs on
    demand only, and a warning says so."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(lambda _: ScheduleUpdate(schedule=schedule))
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        logging.getLogger("trellis.worker").warning("this Temporal server has no schedules; run %s on demand", what)
