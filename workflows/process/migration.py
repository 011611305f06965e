"""A migration of running instances to another template version, in batches (``migration-<id>``):
each batch is one activity that sends its instances the ``migrate`` update and records their answers;
a timer between batches bounds the rate. Durable like any workflow: after a crash it goes on with the
instances still pending, and each instance is migrated once (activities/process/migration.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.process.migration import MigrationActivities
    from core.platform.public_text import PublicText
    from core.process.ids import MIGRATION_WORKFLOW
    from core.process.migration import MigrationRunInput

_BATCH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=MIGRATION_WORKFLOW)
class InstanceMigrationWorkflow:
    @workflow.run
    async def run(self, data: MigrationRunInput) -> int:
        migrated = 0
        while True:
            result = await workflow.execute_activity_method(
                MigrationActivities.batch,
                data,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=_BATCH_RETRY,
                summary=PublicText(f"batch of up to {data.batch_size}"),
            )
            migrated += result.done
            workflow.set_current_details(f"{migrated} instances sent the update; {result.remaining} pending")
            if result.remaining == 0:
                return migrated
            if data.pause_ms:
                await workflow.sleep(timedelta(milliseconds=data.pause_ms))
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(data)
