"""The one way the API talks to Temporal: starts, update-with-start, updates, queries, cancels,
synchronous executions and schedule changes. Routes never touch the client itself.

Every Temporal failure becomes an ``ApiError`` here: a workflow's refusal by its ApplicationError
type through the error catalogue (core/platform/errors.py), an unreachable server as 503, a missing
workflow as ``WorkflowNotFound`` for the caller to explain. No Temporal exception reaches a route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
)
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.errors import ApiError
from core.platform.errors import kind_of
from core.platform.settings import Settings
from core.platform.temporal import retrieve_start_error, start_options

logger = logging.getLogger("trellis.api")

T = TypeVar("T")


class WorkflowNotFound(Exception):
    """No such workflow, or it has closed; the caller knows what that means for its resource."""


class AlreadyFinished(Exception):
    """A start (with a fixed id) found a closed run of that id: a late retry of finished work."""


def _unavailable(exc: RPCError) -> ApiError:
    return ApiError(503, "temporal_unavailable", f"Temporal did not accept the request: {exc.message}; retry later")


class Gateway:
    """Built once per API process in the lifespan, around its one Temporal client."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._wait = settings.temporal_answer_seconds

    def _start_options(
        self, workflow_id: str, search_attributes: Sequence[SearchAttributePair[Any]], summary: str
    ) -> dict[str, Any]:
        return start_options(self._settings, workflow_id, search_attributes, summary)

    async def start(
        self,
        run: Callable[..., Awaitable[Any]],
        arg: Any,
        *,
        workflow_id: str,
        search_attributes: Sequence[SearchAttributePair[Any]] = (),
        summary: str,
    ) -> WorkflowHandle[Any, Any]:
        """Start on the settings' task queue; a retried request with the same id reuses the running
        workflow. A closed workflow's id is never reused (``AlreadyFinished``), so a late retry cannot
        start a second run of something that already finished."""
        try:
            return await self._client.start_workflow(
                run, arg, **self._start_options(workflow_id, search_attributes, summary)
            )
        except WorkflowAlreadyStartedError as exc:
            raise AlreadyFinished(workflow_id) from exc
        except RPCError as exc:
            raise self._maybe_started(exc, workflow_id) from exc

    async def start_with_update(
        self,
        run: Callable[..., Awaitable[Any]],
        arg: Any,
        update: UpdateMethodMultiParam[Any, T],
        *update_args: Any,
        workflow_id: str,
        search_attributes: Sequence[SearchAttributePair[Any]] = (),
        summary: str,
        update_id: str | None = None,
    ) -> T:
        """Start (or find the running) workflow and run an update on it, in one round trip. An update
        with the ``update_id`` of one already applied returns that one's result and applies nothing."""
        operation = WithStartWorkflowOperation(run, arg, **self._start_options(workflow_id, search_attributes, summary))
        try:
            async with asyncio.timeout(self._wait):
                return await self._client.execute_update_with_start_workflow(
                    update, args=update_args, id=update_id, start_workflow_operation=operation
                )
        except WorkflowAlreadyStartedError as exc:
            raise AlreadyFinished(workflow_id) from exc
        except WorkflowUpdateFailedError as exc:
            raise self._refusal(exc) from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.ALREADY_EXISTS:
                raise AlreadyFinished(workflow_id) from exc
            raise self._maybe_started(exc, workflow_id) from exc
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise self._queued(workflow_id) from exc
        finally:
            retrieve_start_error(operation)

    async def update(self, workflow_id: str, update: UpdateMethodMultiParam[Any, T], *args: Any) -> T:
        """Run an update (a method reference, never a string name) and wait for its result."""
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            async with asyncio.timeout(self._wait):
                return await handle.execute_update(update, args=args)
        except WorkflowUpdateFailedError as exc:
            raise self._refusal(exc) from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowNotFound(workflow_id) from exc
            raise _unavailable(exc) from exc
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise self._queued(workflow_id) from exc

    async def query(self, workflow_id: str, query: Callable[..., T]) -> T | None:
        """The answer of a query, or None when nobody can answer (closed, or no worker polling)."""
        try:
            async with asyncio.timeout(10):
                return await self._client.get_workflow_handle(workflow_id).query(query)
        except (RPCError, WorkflowQueryFailedError, TimeoutError):
            return None

    async def cancel(self, workflow_id: str) -> None:
        try:
            await self._client.get_workflow_handle(workflow_id).cancel()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowNotFound(workflow_id) from exc
            raise _unavailable(exc) from exc

    async def execute(self, run: Callable[..., Awaitable[T]], arg: Any, *, workflow_id: str) -> T:
        """Run a short workflow to completion and return its result (e.g. a webhook redelivery)."""
        try:
            async with asyncio.timeout(self._wait * 2):
                return await self._client.execute_workflow(
                    run, arg, id=workflow_id, task_queue=self._settings.task_queue
                )
        except WorkflowFailureError as exc:
            raise ApiError(502, "workflow_failed", f"{workflow_id} failed: {exc.cause or exc}") from exc
        except RPCError as exc:
            raise _unavailable(exc) from exc
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise self._queued(workflow_id) from exc

    async def call(self, action: Callable[[Client, str], Awaitable[T]], *, what: str) -> T:
        """Run a client operation (schedule changes) with the client and task queue, mapping its errors."""
        try:
            return await action(self._client, self._settings.task_queue)
        except RPCError as exc:
            raise ApiError(
                503, "temporal_unavailable", f"{what}: Temporal did not accept the request ({exc.message})"
            ) from exc

    async def reachable(self) -> str | None:
        """None when the Temporal frontend answers a health check within 2 s, else what went wrong."""
        try:
            async with asyncio.timeout(2):
                await self._client.service_client.check_health()
            return None
        except TimeoutError:
            return "no answer within 2s"
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the client could not (re)connect at all
            # Anonymous callers read this: the address and the client's text go to the log only.
            logger.warning("health: Temporal is unavailable: %s", str(exc).splitlines()[0][:500])
            return "unavailable (the API's log says why)"

    # ------------------------------------------------------------------ error answers

    @staticmethod
    def _refusal(exc: WorkflowUpdateFailedError) -> ApiError:
        cause: BaseException | None = exc.cause
        if isinstance(cause, ActivityError) and kind_of(cause.cause) is not None:
            cause = cause.cause  # a refusal the update's activity raised (e.g. data over a cap): nothing changed
        kind = kind_of(cause)
        if kind is not None and 400 <= kind.status < 500:
            details = getattr(cause, "details", ())
            extra = details[0] if details and isinstance(details[0], dict) else {}
            return ApiError(kind.status, kind.code, getattr(cause, "message", str(cause)), **extra)
        # Say what failed: "the database may be unavailable" for every cause sent people retrying what a
        # retry cannot fix.
        reason = str(getattr(cause, "message", None) or cause or "no reason given").splitlines()[0][:300]
        return ApiError(
            503,
            "not_recorded",
            f"the change could not be recorded ({reason}); nothing was changed. Retry later if that is a passing "
            "fault, else tell the admins",
        )

    def _queued(self, workflow_id: str) -> ApiError:
        return ApiError(
            504,
            "timeout",
            f"Temporal or a worker did not answer within {self._wait:.0f}s; the request may still be applied: "
            f"read {workflow_id} before retrying (a start: retry with the same Idempotency-Key)",
        )

    @staticmethod
    def _maybe_started(exc: RPCError, workflow_id: str) -> ApiError:
        # A failed start RPC may still have reached the server: say so, and say what to read.
        return ApiError(
            503,
            "temporal_unavailable",
            f"Temporal did not confirm the request ({exc.message}); it may still be applied: read {workflow_id} "
            "or retry with the same Idempotency-Key",
        )
