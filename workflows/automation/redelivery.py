"""Redelivery of a dead-lettered webhook, started through the API."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.automation.actions import ActionActivities
    from core.automation.rules import RedeliveryInput, RedeliveryResult


@workflow.defn(name="WebhookRedelivery")
class WebhookRedeliveryWorkflow:
    @workflow.run
    async def run(self, data: RedeliveryInput) -> RedeliveryResult:
        return await workflow.execute_activity_method(
            ActionActivities.redeliver_webhook,
            data,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
