"""The policy check every activity that acts runs first (step and agent tool calls, rule actions): one
rule, in one transaction of its own, so that a refusal is recorded though no effect follows.

``gate`` returns when the action may go ahead: no policy denies it, and an approval it needs has been
granted. Otherwise it raises, after the decision (and its link to the approval) is committed:
``PolicyDenied`` (the caller is told), or ``ApprovalRequired`` carrying the approval to ask for (the
calling workflow starts it as a child and, once approved, runs the action again with its id).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.exceptions import ApplicationError

from core.people import directory
from core.people.directory import Choice
from core.platform import errors
from core.platform.ids import derived_id
from core.policy import store
from core.policy.contracts import ApprovalInput, Approvers, CheckRequest, PolicyDecision, TransitionToPerform
from core.policy.evaluate import STRENGTH


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


async def distributed(conn: AsyncConnection, asked: ApprovalInput, now: datetime) -> ApprovalInput:
    """The approval as offered: with a ``distribution``, ``count`` people of the pool chosen now (never the
    requester, nor whoever stands in for them) become its approvers in place of the pool, each choice in
    the assignment log. When the pool has too few people with room, it stays offered to the whole pool."""
    rule = asked.obligations.distribution
    if rule is None:
        return asked
    chosen: list[Choice] = []
    excluding = {asked.requester}
    for _ in range(asked.obligations.count):
        choice = await directory.choose(conn, rule, now, frozenset(excluding))
        if choice is None:
            return asked
        chosen.append(choice)
        excluding.add(choice.assignee)
    for choice in chosen:
        await directory.log_change(
            conn, item=f"approval:{asked.approval_id}", from_assignee=None, choice=choice, actor="policy"
        )
    approvers = asked.obligations.approvers
    offered = Approvers(
        people=sorted({*approvers.people, *(c.assignee for c in chosen)}),
        roles=[r for r in approvers.roles if r != rule.pool],
    )
    # The distribution is done: what is offered names the chosen people (and no longer the pool).
    obligations = asked.obligations.model_copy(update={"approvers": offered, "distribution": None})
    return asked.model_copy(update={"obligations": obligations})


async def gate(
    engine: AsyncEngine,
    request: CheckRequest,
    *,
    key: str,
    context: dict[str, Any],
    granted: str | None,
    title: str,
    also: CheckRequest | None = None,
) -> None:
    """Check ``request`` under the action's ledger ``key``; ``granted`` is the approval id the action
    carries when it runs again after an approval. ``also`` is the same action seen as another kind (a
    step's or agent's ``instance.transition`` is a tool call and a transition): both are decided and the
    stronger decision holds (on a tie, ``also``'s: the business rule written for that move). One approval
    answers both, and settles both their decision rows."""
    refusal: ApplicationError | None = None
    async with engine.begin() as conn:
        keys = [f"policy:{key}"]
        decision = await store.check(conn, request, key=keys[0], context=context)
        if also is not None:
            keys.append(f"policy:{key}:{also.action.kind}")
            other = await store.check(conn, also, key=keys[1], context=context)
            if other.policy is not None and STRENGTH[other.effect] >= STRENGTH[decision.effect]:
                decision, request = other, also
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
            for decided in keys:
                await store.link_approval(conn, decided, uuid.UUID(approval_id))
            asked = approval_asked(request, decision, approval_id=approval_id, title=title, context=context)
            asked = await distributed(conn, asked, datetime.now(UTC))
            refusal = errors.APPROVAL_REQUIRED.error(decision.reason, asked.model_dump(mode="json"))
    if refusal is not None:
        raise refusal
