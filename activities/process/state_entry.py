"""Activities of the process-instance workflow: each opens the transaction in which the store
(core/process/store.py) writes a state entry or an approval step, turns data Postgres refuses into a
non-retryable failure, and counts what this attempt committed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.entities.contracts import EntityLimits, EntityTooLarge
from core.entities.store import DEFAULT_LIMITS
from core.platform import errors, telemetry
from core.platform.database import is_data_error
from core.process import store
from core.process.contracts import ApprovalRecordInput, EnterStateInput, EnterStateResult
from core.process.migration import MigrateRecordInput


@contextmanager
def refuse_invalid_data() -> Iterator[None]:
    """Data Postgres refuses will be refused on every retry too: fail at once, non-retryable."""
    try:
        yield
    except EntityTooLarge as exc:
        raise errors.INVALID_DATA.error(str(exc)) from exc
    except DBAPIError as exc:
        if not is_data_error(exc):
            raise
        message = f"the database refused the data: {exc.orig}"
        raise errors.INVALID_DATA.error(message) from exc


class ProcessActivities:
    """Built in ``worker.py`` with the engine it writes through and the entity limits."""

    def __init__(self, engine: AsyncEngine, limits: EntityLimits = DEFAULT_LIMITS) -> None:
        self._engine = engine
        self._limits = limits

    @activity.defn(name="process.enter_state")
    async def enter_state(self, data: EnterStateInput) -> EnterStateResult:
        """Create or update the state's entity, link it, project the instance and log the events."""
        with refuse_invalid_data():
            return await self._enter_state(data)

    async def _enter_state(self, data: EnterStateInput) -> EnterStateResult:
        state = data.to_state
        try:
            async with self._engine.begin() as conn:
                await store.enter_state(conn, data, self._limits)
        except store.AlreadyEntered:
            # An earlier attempt committed this step already: this one's writes are rolled back, and
            # nothing more is counted.
            return EnterStateResult(entity_id=data.entity_id)
        # Committed by this attempt.
        meter = activity.metric_meter()
        template = {"template": data.template.code}
        telemetry.count(meter, telemetry.TRANSITIONS, template)
        if state.terminal_flag:
            outcome = "succeeded" if state.success else "failed"
            telemetry.count(meter, telemetry.INSTANCES_FINISHED, template | {"outcome": outcome})
        if state.approval is not None:
            telemetry.count(meter, telemetry.INBOX_OPENED, {"kind": "approval"})
        return EnterStateResult(entity_id=data.entity_id)

    @activity.defn(name="process.record_approval")
    async def record_approval(self, data: ApprovalRecordInput) -> None:
        """Record an approval step (decision, escalation, timeout) and send its notifications."""
        with refuse_invalid_data():
            await self._record_approval(data)

    async def _record_approval(self, data: ApprovalRecordInput) -> None:
        async with self._engine.begin() as conn:
            template_code = await store.record_approval(conn, data)
        if template_code is not None and data.workflow_status is not None:  # counted once committed
            finished = {"template": template_code, "outcome": data.workflow_status}
            telemetry.count(activity.metric_meter(), telemetry.INSTANCES_FINISHED, finished)

    @activity.defn(name="process.migrate")
    async def migrate(self, data: MigrateRecordInput) -> None:
        """Record the instance's move to another template version (its ``migrate`` update)."""
        with refuse_invalid_data():
            async with self._engine.begin() as conn:
                await store.record_migration(conn, data, self._limits)
