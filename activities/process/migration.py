"""The migration's batch activity: send the next pending instances the ``migrate`` update, one at a
time, and record each answer. A batch cut short (the worker killed) is simply run again: an item is
pending until its answer is recorded, the update id is the migration's (Temporal applies it once per
run), and the instance's workflow applies a migration id once, so a repeated send changes nothing."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.platform import errors
from core.process import migrations, templates
from core.process.contracts import InstanceView
from core.process.ids import MIGRATE, migrate_update_id, process_workflow_id
from core.process.migration import BatchResult, MigrateRequest, MigrationRunInput


class MigrationActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="process.migration_batch")
    async def batch(self, data: MigrationRunInput) -> BatchResult:
        migration_id = uuid.UUID(data.migration_id)
        async with self._engine.connect() as conn:
            plan, actor = await migrations.plan_of(conn, migration_id)
            target = await templates.get_by_code(conn, plan.template_code, plan.to_version)
            batch = await migrations.pending(conn, migration_id, data.batch_size)
        assert target is not None  # versions are never deleted
        request = MigrateRequest(
            migration_id=data.migration_id,
            actor=actor,
            from_version=plan.from_version,
            mapping=plan.mapping,
            rules=plan.rules,
            target=templates.snapshot(target),
        )
        client = activity.client()
        for instance_id in batch:
            activity.heartbeat(str(instance_id))
            outcome, message = await self._send(client, instance_id, request, data.migration_id)
            async with self._engine.begin() as conn:
                await migrations.record_item(conn, migration_id, instance_id, outcome, message)
        async with self._engine.begin() as conn:
            remaining = await migrations.count_pending(conn, migration_id)
            if remaining == 0:
                await migrations.finish(conn, migration_id)
        return BatchResult(done=len(batch), remaining=remaining)

    @staticmethod
    async def _send(
        client: Client, instance_id: uuid.UUID, request: MigrateRequest, migration_id: str
    ) -> tuple[str, str | None]:
        """Send one instance the update: (``migrated`` | ``refused``, why). A transition under way
        is waited out a few times; Temporal being unavailable fails the batch (it is tried again)."""
        handle = client.get_workflow_handle(process_workflow_id(instance_id))
        for attempt in range(5):
            try:
                await handle.execute_update(
                    MIGRATE, request, id=migrate_update_id(migration_id), result_type=InstanceView
                )
                return "migrated", None
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if (
                    isinstance(cause, ApplicationError)
                    and cause.type == errors.TRANSITION_IN_PROGRESS.type
                    and attempt < 4
                ):
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                return "refused", str(getattr(cause, "message", None) or cause or exc)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                return "refused", "the instance's workflow has finished (or was started before migrations)"
        raise AssertionError("unreachable: the last attempt returns")
