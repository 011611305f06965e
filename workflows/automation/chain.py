"""Automation chain: one rule's actions, in order, for one event (``automation-<rule>-<event>``).

The run is first claimed (counted against max_executions, atomically); then each action is an
activity from the one action registry. A failing action stops the chain with its reason recorded;
a webhook that fails its last attempt is dead-lettered for redelivery.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.automation.actions import ActionActivities
    from activities.automation.chains import AutomationActivities
    from core.automation.rules import ActionInput, ChainInput, ChainOutcome, ClaimInput, DeadLetterInput, FinishInput
    from core.platform import errors

ACTIONS = {
    "update_field": ActionActivities.update_field,
    "create_entity": ActionActivities.create_entity,
    "send_notification": ActionActivities.send_notification,
    "send_email": ActionActivities.send_email,
    "call_webhook": ActionActivities.call_webhook,
    "run_script": ActionActivities.run_script,
}

_BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
_ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
    non_retryable_error_types=[errors.ACTION_INVALID.type],
)


def chain_workflow_id(rule_id: str, event_id: str) -> str:
    return f"automation-{rule_id}-{event_id}"


@workflow.defn(name="AutomationChain")
class AutomationChainWorkflow:
    @workflow.run
    async def run(self, data: ChainInput) -> ChainOutcome:
        rule, event = data.rule, data.event
        claim = await workflow.execute_local_activity_method(
            AutomationActivities.claim,
            ClaimInput(rule_id=rule.id, event_id=event["id"], workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING_RETRY,
        )
        if not claim.claimed:
            return ChainOutcome(status="skipped", reason=claim.reason)
        for index, action in enumerate(rule.actions):
            kind = action["type"]
            webhook = kind == "call_webhook"
            try:
                await workflow.execute_activity_method(
                    ACTIONS[kind],
                    ActionInput(rule=rule, event=event, action_index=index),
                    start_to_close_timeout=self._time_limit(action),
                    retry_policy=self._webhook_retry(data) if webhook else _ACTION_RETRY,
                    summary=f"{index + 1}/{len(rule.actions)} {kind}",
                )
            except ActivityError as err:
                cause = err.cause
                message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                reason = f"action {index + 1} ({kind}) failed: {message}"
                if webhook and not (isinstance(cause, ApplicationError) and cause.type == errors.WEBHOOK_BLOCKED.type):
                    details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
                    details = details if isinstance(details, dict) else {}
                    exhausted = err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
                    await workflow.execute_local_activity_method(
                        AutomationActivities.dead_letter,
                        DeadLetterInput(
                            rule=rule,
                            event=event,
                            action_index=index,
                            last_status=details.get("status"),
                            last_error=message,
                            attempts=details.get("attempt") or (data.webhook_retry.max_attempts if exhausted else 1),
                        ),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=_BOOKKEEPING_RETRY,
                    )
                    reason += " (dead-lettered)"
                await self._finish(data, "failed", reason)
                return ChainOutcome(status="failed", reason=reason, actions_done=index)
        await self._finish(data, "completed", None)
        return ChainOutcome(status="completed", actions_done=len(rule.actions))

    @staticmethod
    def _time_limit(action: dict[str, object]) -> timedelta:
        """Per attempt; short, so an attempt lost with a crashed worker is retried soon."""
        if action["type"] == "call_webhook":
            return timedelta(seconds=float(str(action.get("timeout_seconds", 10.0))) + 10)
        if action["type"] == "run_script":
            return timedelta(seconds=float(str(action.get("timeout_seconds", 5.0))) + 10)
        return timedelta(seconds=30 if action["type"] == "send_email" else 15)

    @staticmethod
    def _webhook_retry(data: ChainInput) -> RetryPolicy:
        spec = data.webhook_retry
        return RetryPolicy(
            initial_interval=timedelta(seconds=spec.initial_seconds),
            maximum_interval=timedelta(seconds=spec.max_seconds),
            maximum_attempts=spec.max_attempts,
            non_retryable_error_types=[
                errors.ACTION_INVALID.type,
                errors.WEBHOOK_REJECTED.type,
                errors.WEBHOOK_BLOCKED.type,
            ],
        )

    @staticmethod
    async def _finish(data: ChainInput, status: Literal["completed", "failed"], reason: str | None) -> None:
        await workflow.execute_local_activity_method(
            AutomationActivities.finish,
            FinishInput(rule_id=data.rule.id, event_id=data.event["id"], status=status, reason=reason),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING_RETRY,
        )
