"""The policy check every activity that acts runs first (step and agent tool calls, rule actions): one
rule, in one transaction of its own, so that a refusal is recorded though no effect follows.

``gate`` returns when the action may go ahead: no policy denies it, and an approval it needs has been
granted. Otherwise it raises, after the decision (and its link to the approval) is committed:
``PolicyDenied`` (the caller is told), or ``ApprovalRequired`` carrying the approval to ask for (the
calling workflow starts it as a child and, once approved, runs the action again with its id).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from core.platform import errors
from core.platform.ids import derived_id
from core.policy import store
from core.policy.contracts import ApprovalInput, CheckRequest, PolicyDecision, TransitionToPerform


def approval_asked(
    request: CheckRequest,
    decision: PolicyDecision,
    *,
    approval_id: str,
    title: str,
    context: dict[str, Any],
    perform: TransitionToPerform | None = None,
) -> ApprovalInput:
    """What a ``require_approval`` decision asks of people: the approval workflow's input."""
    assert decision.approval is not None and decision.policy is not None and decision.version is not None
    return ApprovalInput(
        approval_id=approval_id,
        title=title,
        requester=request.subject.name,
        subject=request.subject,
        action=request.action,
        arguments=store.bounded_arguments(request.arguments),
        policy=decision.policy,
        version=decision.version,
        reason=decision.reason,
        obligations=decision.approval,
        context=context,
        perform=perform,
    )


async def gate(
    engine: AsyncEngine,
    request: CheckRequest,
    *,
    key: str,
    context: dict[str, Any],
    granted: str | None,
    title: str,
) -> None:
    """Check ``request`` under the action's ledger ``key``; ``granted`` is the approval id the action
    carries when it runs again after an approval."""
    refusal: ApplicationError | None = None
    async with engine.begin() as conn:
        decision = await store.check(conn, request, key=f"policy:{key}", context=context)
        approval_id = str(derived_id("approval", key))
        if decision.effect == "deny":
            refusal = errors.POLICY_DENIED.error(
                decision.reason, {"policy": decision.policy, "version": decision.version}
            )
        elif decision.effect == "require_approval" and granted is not None:
            found = await store.get_approval(conn, uuid.UUID(granted))
            # Only the approval derived from this action's own key, and granted, lets it through.
            if granted != approval_id or found is None or found.status != "approved":
                refusal = errors.POLICY_DENIED.error(f"{decision.reason}; the approval {granted} was not granted")
        elif decision.effect == "require_approval":
            await store.link_approval(conn, f"policy:{key}", uuid.UUID(approval_id))
            asked = approval_asked(request, decision, approval_id=approval_id, title=title, context=context)
            refusal = errors.APPROVAL_REQUIRED.error(decision.reason, asked.model_dump(mode="json"))
    if refusal is not None:
        raise refusal
