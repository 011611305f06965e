"""The error catalogue: every error a workflow or an activity raises, with the HTTP answer it becomes.

Workflows and activities raise ``ApplicationError``s whose *type* is an ``ErrorKind.type`` below
(``kind.error(message)`` builds one); the API gateway turns a refusal into its status and code by
looking the type up here, never by reading message text. Retries are governed by the same entry:
a kind that is not ``retryable`` is raised non-retryable, so Temporal does not try it again.

The type strings are recorded in workflow histories: never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError


@dataclass(frozen=True)
class ErrorKind:
    """One kind of failure: its ApplicationError type, HTTP status and the API's error code."""

    type: str
    status: int
    code: str
    retryable: bool = False

    def error(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        next_retry_delay: timedelta | None = None,
        retryable: bool | None = None,
    ) -> ApplicationError:
        """An ApplicationError of this kind; ``retryable`` overrides the kind's default for one case."""
        args = (details,) if details is not None else ()
        retry = self.retryable if retryable is None else retryable
        return ApplicationError(
            message, *args, type=self.type, non_retryable=not retry, next_retry_delay=next_retry_delay
        )


# Process instances: refusals of updates (answered synchronously, nothing recorded).
INVALID_TRANSITION = ErrorKind("InvalidTransition", 409, "invalid_transition")
INSTANCE_FINISHED = ErrorKind("InstanceFinished", 409, "instance_finished")
APPROVAL_PENDING = ErrorKind("ApprovalPending", 409, "approval_pending")
TRANSITION_IN_PROGRESS = ErrorKind("TransitionInProgress", 409, "transition_in_progress")
NO_APPROVAL_PENDING = ErrorKind("NoApprovalPending", 409, "no_approval_pending")
NO_ALERT_OPEN = ErrorKind("NoAlertOpen", 409, "no_alert_open")
# A paused run (core/platform/pauses.py) refuses transitions, decisions and resumes it does not need.
PAUSED = ErrorKind("Paused", 409, "paused")
ALREADY_PAUSED = ErrorKind("AlreadyPaused", 409, "already_paused")
NOT_PAUSED = ErrorKind("NotPaused", 409, "not_paused")
# A migration the instance's workflow refuses (it moved on since the preview, or the plan does not fit it).
MIGRATION_REFUSED = ErrorKind("MigrationRefused", 409, "migration_refused")
NOT_PERMITTED = ErrorKind("NotPermitted", 403, "forbidden")

# The approval policy (core/policy): an action a policy denies, or that waits for an approval first.
POLICY_DENIED = ErrorKind("PolicyDenied", 403, "policy_denied")
APPROVAL_REQUIRED = ErrorKind("ApprovalRequired", 202, "approval_required")
# A vote an approval refuses: not pending any more, not the voter's to give, or given already.
APPROVAL_CLOSED = ErrorKind("ApprovalClosed", 409, "approval_closed")
NOT_AN_APPROVER = ErrorKind("NotAnApprover", 403, "not_an_approver")
SEPARATION_OF_DUTIES = ErrorKind("SeparationOfDuties", 403, "separation_of_duties")
ALREADY_VOTED = ErrorKind("AlreadyVoted", 409, "already_voted")

# Agent sessions.
NOT_AWAITING_APPROVAL = ErrorKind("NotAwaitingApproval", 409, "not_awaiting_approval")
AGENT_OUTPUT_INVALID = ErrorKind("AgentOutputInvalid", 502, "agent_output_invalid")
LLM_REJECTED = ErrorKind("LlmRejected", 502, "llm_rejected")
LLM_UNAVAILABLE = ErrorKind("LlmUnavailable", 503, "llm_unavailable", retryable=True)

# Activities that write: data Postgres refuses is refused on every retry too.
INVALID_DATA = ErrorKind("InvalidData", 422, "invalid_value")
# The entity store's caps (raised as core.entities.contracts.EntityTooLarge, whose class name is the type).
ENTITY_TOO_LARGE = ErrorKind("EntityTooLarge", 413, "entity_too_large")
# Data a workflow would carry past a cap (a work item's execution_data): refused, nothing changed.
PAYLOAD_TOO_LARGE = ErrorKind("PayloadTooLarge", 413, "too_large")

# Human tasks of step workflows.
NO_TASK_OPEN = ErrorKind("NoTaskOpen", 409, "task_not_open")
INVALID_DECISION = ErrorKind("InvalidDecision", 422, "invalid_decision")

# Actions (automation chains, later step tools).
ACTION_INVALID = ErrorKind("ActionInvalid", 422, "action_invalid")
# A step tool's attempt failed; details say whether the step's retry settings may try it again.
STEP_FAILED = ErrorKind("StepToolFailed", 422, "step_failed")
WEBHOOK_REJECTED = ErrorKind("WebhookRejected", 502, "webhook_rejected")
# A call target's circuit breaker is open (core/platform/breakers.py): nothing was sent.
CIRCUIT_OPEN = ErrorKind("CircuitOpen", 503, "circuit_open")
WEBHOOK_BLOCKED = ErrorKind("WebhookBlocked", 422, "webhook_blocked")
WEBHOOK_FAILED = ErrorKind("WebhookFailed", 502, "webhook_failed", retryable=True)
# An effect's target could not take it now (an SMTP 4xx, a dropped connection): the action's retry
# policy tries again (core/effects/failures.py).
EFFECT_UNAVAILABLE = ErrorKind("EffectUnavailable", 503, "effect_unavailable", retryable=True)

CATALOGUE: dict[str, ErrorKind] = {kind.type: kind for kind in list(globals().values()) if isinstance(kind, ErrorKind)}

# Every retry policy names these as non-retryable, so retryability is stated once (the ``retryable`` flag
# above) and not again in each policy. An error raised with ``retryable=`` overriding its kind carries
# its own non_retryable flag, which Temporal honours too.
NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(sorted(t for t, kind in CATALOGUE.items() if not kind.retryable))


def with_details(error: ApplicationError, **extra: Any) -> ApplicationError:
    """The same catalogued error with more details (an attempt number, say), its retry flags kept."""
    details = dict(error.details[0]) if error.details and isinstance(error.details[0], dict) else {}
    return ApplicationError(
        error.message,
        {**details, **extra},
        type=error.type,
        non_retryable=error.non_retryable,
        next_retry_delay=error.next_retry_delay,
    )


def retry_policy(*, initial: timedelta, maximum: timedelta, attempts: int = 0, backoff: float = 2.0) -> RetryPolicy:
    """A retry policy that never retries a non-retryable kind of the catalogue."""
    return RetryPolicy(
        initial_interval=initial,
        maximum_interval=maximum,
        maximum_attempts=attempts,
        backoff_coefficient=backoff,
        non_retryable_error_types=list(NON_RETRYABLE_TYPES),
    )


def kind_of(error: BaseException | None) -> ErrorKind | None:
    """The catalogue entry of an ApplicationError, or None for anything else."""
    if isinstance(error, ApplicationError) and error.type is not None:
        return CATALOGUE.get(error.type)
    return None


__all__ = [
    "ACTION_INVALID",
    "AGENT_OUTPUT_INVALID",
    "ALREADY_PAUSED",
    "ALREADY_VOTED",
    "APPROVAL_CLOSED",
    "APPROVAL_PENDING",
    "APPROVAL_REQUIRED",
    "CATALOGUE",
    "CIRCUIT_OPEN",
    "EFFECT_UNAVAILABLE",
    "ENTITY_TOO_LARGE",
    "INSTANCE_FINISHED",
    "INVALID_DATA",
    "INVALID_DECISION",
    "INVALID_TRANSITION",
    "LLM_REJECTED",
    "LLM_UNAVAILABLE",
    "MIGRATION_REFUSED",
    "NON_RETRYABLE_TYPES",
    "NOT_AN_APPROVER",
    "NOT_AWAITING_APPROVAL",
    "NOT_PAUSED",
    "NOT_PERMITTED",
    "NO_ALERT_OPEN",
    "NO_APPROVAL_PENDING",
    "NO_TASK_OPEN",
    "PAUSED",
    "PAYLOAD_TOO_LARGE",
    "POLICY_DENIED",
    "SEPARATION_OF_DUTIES",
    "TRANSITION_IN_PROGRESS",
    "WEBHOOK_BLOCKED",
    "WEBHOOK_FAILED",
    "WEBHOOK_REJECTED",
    "ErrorKind",
    "kind_of",
    "retry_policy",
    "with_details",
]
