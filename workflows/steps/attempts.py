"""Retries and backoff of the step interpreter: how an attempt fails, how a step fails for good, and
how long the interpreter waits (on a workflow timer) before the next attempt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from core.platform import errors
    from core.steps.definition import Step, StepRetry, StepWorkflowDefinition


class AttemptFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class StepFailed(Exception):
    def __init__(
        self, message: str, retry_count: int = 0, params: Any = None, *, skipped: bool = False, aborted: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_count = retry_count
        self.params = params
        self.skipped = skipped  # an escalation's decision: record the error and go on
        self.aborted = aborted  # an escalation's decision: fail, unwinding the saga if there is one


class Compensate(Exception):
    """A step whose onError strategy is ``compensate`` failed for good: the saga unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def backoff(retry: StepRetry, attempts_made: int) -> timedelta:
    """The wait before the next attempt, after ``attempts_made`` failed ones."""
    initial = retry.initial_interval_ms
    if retry.backoff == "fixed":
        wait = initial
    elif retry.backoff == "linear":
        wait = initial * attempts_made
    else:
        wait = initial * 2 ** (attempts_made - 1)
    return timedelta(milliseconds=min(wait, retry.max_interval_ms))


def _failure(err: ActivityError | ChildWorkflowError) -> AttemptFailed:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        if cause.type == errors.STEP_FAILED.type:
            details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            return AttemptFailed(cause.message, retryable=bool(details.get("retryable", True)))
        if cause.type in (errors.LLM_REJECTED.type, errors.LLM_UNAVAILABLE.type, errors.POLICY_DENIED.type):
            return AttemptFailed(cause.message, retryable=False)
        return AttemptFailed(cause.message, retryable=True)
    return AttemptFailed(f"{type(cause).__name__}: {cause}" if cause else str(err), retryable=True)


def _retry_of(step: Step, definition: StepWorkflowDefinition) -> StepRetry:
    if step.retry is not None:
        return step.retry
    if step.on_error is not None and step.on_error.strategy == "retry":
        policy = step.on_error
        return StepRetry(
            max_attempts=policy.max_retries + 1,
            backoff=policy.backoff_strategy,
            initial_interval_ms=policy.initial_interval_ms,
            max_interval_ms=policy.max_interval_ms,
        )
    return StepRetry(max_attempts=definition.config.max_retries + 1)
