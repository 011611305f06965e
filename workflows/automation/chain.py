"""Automation chain: one rule's actions, in order, for one event (``automation-<rule>-<event>``).

The run is claimed (counted against max_executions, atomically) by the dispatcher, or here when it
was not; then each action is an activity from the one action registry, with the time limit and the
retry policy its declaration gives. A failing action stops the chain with its reason recorded; a
webhook that fails for good is dead-lettered for redelivery.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.automation.chains import AutomationActivities
    from activities.automation.registry import ACTIONS, RegisteredAction
    from core.automation.rules import (
        ActionInput,
        ChainInput,
        ChainOutcome,
        ClaimInput,
        DeadLetterInput,
        FinishInput,
        LegacyActionResult,
    )
    from core.platform import errors
    from core.platform import search_attributes as sa
    from core.policy.contracts import ApprovalInput

from workflows.policy.approval import PolicyApprovalWorkflow, approval_workflow_id

_BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
# Histories recorded before actions had typed outputs decode their results as LegacyActionResult.
TYPED_ACTION_RESULTS = "typed-action-results"
# Before this, a failure while dead-lettering (or any other failure) failed the chain and left its
# execution row 'running'; runs recorded then replay that way.
ALWAYS_FINISH = "always-finish-the-execution"
_DEAD_LETTER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5), maximum_attempts=5
)


def chain_workflow_id(rule_id: str, event_id: str) -> str:
    return f"automation-{rule_id}-{event_id}"


def chain_attributes(run: ChainInput) -> TypedSearchAttributes:
    """What makes a chain findable in the Temporal UI: its rule, entity type and id, and trigger."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.RULE_ID, run.rule.id),
        SearchAttributePair(sa.ENTITY_TYPE, run.event.entity_type),
        SearchAttributePair(sa.TRIGGER, run.event.event_kind),
    ]
    if run.event.entity_id:
        pairs.append(SearchAttributePair(sa.ENTITY_ID, run.event.entity_id))
    return TypedSearchAttributes(pairs)


def chain_summary(run: ChainInput) -> str:
    return f"{run.rule.workflow_name}: {run.event.entity_type} {run.event.event_kind}"


@workflow.defn(name="AutomationChain")
class AutomationChainWorkflow:
    @workflow.run
    async def run(self, data: ChainInput) -> ChainOutcome:
        try:
            return await self._run(data)
        except ApplicationError as exc:
            # Whatever fails, the execution is recorded as failed: it never stays 'running'.
            if not workflow.patched(ALWAYS_FINISH):
                raise
            reason = f"the chain failed: {exc.message}"
            await self._finish(data, "failed", reason)
            return ChainOutcome(status="failed", reason=reason)

    async def _run(self, data: ChainInput) -> ChainOutcome:
        rule, event = data.rule, data.event
        if not data.claimed:
            claim = await workflow.execute_local_activity_method(
                AutomationActivities.claim,
                ClaimInput(
                    rule_id=rule.id,
                    event_id=event.id,
                    workflow_id=workflow.info().workflow_id,
                    entity_type=event.entity_type,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_BOOKKEEPING_RETRY,
            )
            if not claim.claimed:
                return ChainOutcome(status="skipped", reason=claim.reason)
        for index, action in enumerate(rule.actions):
            entry = ACTIONS[action.type]
            try:
                await self._perform_once_allowed(entry, ActionInput(rule=rule, event=event, action_index=index), data)
            except ActivityError as err:
                cause = err.cause
                message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                reason = f"action {index + 1} ({action.type}) failed: {message}"
                blocked = isinstance(cause, ApplicationError) and cause.type == errors.WEBHOOK_BLOCKED.type
                if entry.spec.dead_letters and not blocked:
                    details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
                    details = details if isinstance(details, dict) else {}
                    exhausted = err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
                    try:
                        letter = await workflow.execute_local_activity_method(
                            AutomationActivities.dead_letter,
                            DeadLetterInput(
                                rule=rule,
                                event=event,
                                action_index=index,
                                last_status=details.get("status"),
                                last_error=message,
                                attempts=details.get("attempt")
                                or (data.webhook_retry.max_attempts if exhausted else 1),
                            ),
                            start_to_close_timeout=timedelta(seconds=30),
                            retry_policy=_DEAD_LETTER_RETRY if workflow.patched(ALWAYS_FINISH) else _BOOKKEEPING_RETRY,
                        )
                        reason += " (dead-lettered)" if letter != "" else " (nothing to dead-letter)"
                    except ActivityError as failed:
                        if not workflow.patched(ALWAYS_FINISH):
                            raise
                        reason += f" (dead-lettering failed: {failed.cause or failed})"
                await self._finish(data, "failed", reason)
                return ChainOutcome(status="failed", reason=reason, actions_done=index)
        await self._finish(data, "completed", None)
        return ChainOutcome(status="completed", actions_done=len(rule.actions))

    async def _perform_once_allowed(self, entry: RegisteredAction, call: ActionInput, data: ChainInput) -> None:
        """The action; when the approval policy asks people first (core/policy), its approval as a child
        workflow, then the action with the approval granted, or the chain fails with the refusal."""
        try:
            await self._perform(entry, call, data)
        except ActivityError as err:
            cause = err.cause
            if not (
                isinstance(cause, ApplicationError) and cause.type == errors.APPROVAL_REQUIRED.type and cause.details
            ):
                raise
            asked = ApprovalInput.model_validate(cause.details[0])
            decided = await workflow.execute_child_workflow(
                PolicyApprovalWorkflow.run, asked, id=approval_workflow_id(asked.approval_id)
            )
            if decided.status != "approved":
                raise ActivityError(
                    f"not approved: {decided.message or decided.status}",
                    scheduled_event_id=err.scheduled_event_id,
                    started_event_id=err.started_event_id,
                    identity=err.identity,
                    activity_type=err.activity_type,
                    activity_id=err.activity_id,
                    retry_state=err.retry_state,
                ) from errors.POLICY_DENIED.error(f"{cause.message}: {decided.message or decided.status}")
            await self._perform(entry, call.model_copy(update={"approval_id": asked.approval_id}), data)

    @staticmethod
    async def _perform(entry: RegisteredAction, call: ActionInput, data: ChainInput) -> None:
        """One action as its declaration says: time limit per attempt, retry policy, typed output."""
        options: dict[str, Any] = {
            "start_to_close_timeout": entry.spec.time_limit_of(call.action),
            "retry_policy": entry.spec.retry(data.webhook_retry),
            "summary": f"{call.action_index + 1}/{len(data.rule.actions)} {entry.spec.name}",
        }
        if workflow.patched(TYPED_ACTION_RESULTS):
            if entry.activity is not None:
                await workflow.execute_activity_method(entry.activity, call, **options)
            else:
                await workflow.execute_activity(entry.activity_name, call, result_type=entry.spec.output, **options)
        else:
            await workflow.execute_activity(entry.activity_name, call, result_type=LegacyActionResult, **options)

    @staticmethod
    async def _finish(data: ChainInput, status: Literal["completed", "failed"], reason: str | None) -> None:
        await workflow.execute_local_activity_method(
            AutomationActivities.finish,
            FinishInput(
                rule_id=data.rule.id,
                event_id=data.event.id,
                status=status,
                reason=reason,
                entity_type=data.event.entity_type,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING_RETRY,
        )
