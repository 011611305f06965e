"""An approval a policy asked for (workflow id ``approval-<id>``): it collects votes until enough
distinct approvers agreed, one rejected, or its deadline passed; escalates when it is late; and, for a
transition asked through the API, performs it once approved. An agent's or a step's approval is this
workflow as a child of the run that waits: the child's result goes back to the call that asked.

Who may vote is checked here, in the update's validator, so every way in (API, inbox, console) meets
one rule: an approver by name or role (escalation targets too once it escalated); never the requester
when separation of duties holds, nor someone standing in for the requester (out of office); and each
person counts once, whether they voted themselves or through their delegate.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.policy.approvals import ApprovalActivities
    from core.platform import errors
    from core.policy.contracts import (
        PERFORM_TRANSITION,
        ApprovalInput,
        ApprovalOutcome,
        ApprovalRecord,
        ApprovalState,
        Vote,
        deciders,
    )

_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
_PERFORM_RETRY = errors.retry_policy(initial=timedelta(seconds=1), maximum=timedelta(seconds=30), attempts=20)


def approval_workflow_id(approval_id: str) -> str:
    return f"approval-{approval_id}"


def eligible(data: ApprovalInput, state: ApprovalState, vote: Vote) -> str | None:
    """Why ``vote`` may not be given; None when it may."""
    if state.status != "pending":
        return f"the approval is {state.status}"
    obligations = data.obligations
    who = {vote.actor, *vote.on_behalf_of}
    if obligations.separation_of_duties and data.requester in who:
        if vote.actor == data.requester:
            return f"{vote.actor} asked for this approval and may not approve their own request (separation of duties)"
        return f"{vote.actor} stands in for {data.requester}, who asked for this approval (separation of duties)"
    allowed_people, allowed_roles = deciders(
        obligations.approvers.people,
        obligations.approvers.roles,
        obligations.escalation.to if obligations.escalation else [],
        state.escalated,
    )
    roles = {vote.role, *vote.roles}
    if not (who & allowed_people or roles & allowed_roles or (vote.role == "admin" and "admin" in allowed_roles)):
        names = sorted(allowed_people) + [f"role {r}" for r in sorted(allowed_roles)]
        return f"{vote.actor} is not among this approval's approvers ({', '.join(names)})"
    counted = {p for v in state.votes for p in (v.actor, *v.on_behalf_of)}
    if who & counted:
        return f"{', '.join(sorted(who & counted))} already voted on this approval"
    return None


@workflow.defn(name="PolicyApproval")
class PolicyApprovalWorkflow:
    @workflow.init
    def __init__(self, data: ApprovalInput) -> None:
        self._data = data
        self._state = ApprovalState()
        self._created = workflow.now()
        self._changed = False

    @workflow.query
    def progress(self) -> ApprovalState:
        return self._state

    @workflow.update
    async def vote(self, vote: Vote) -> ApprovalState:
        if self._state.status != "pending":  # another vote of the same activation settled it first
            return self._state
        self._state.votes.append(vote.model_copy(update={"ts": workflow.now()}))
        approvals = sum(1 for v in self._state.votes if v.decision == "approve")
        if vote.decision == "reject":
            self._state.status = "rejected"
            self._state.message = f"rejected by {vote.actor}" + (f": {vote.comment}" if vote.comment else "")
        elif approvals >= self._data.obligations.count:
            self._state.status = "approved"
            deciders = ", ".join(v.actor for v in self._state.votes)
            self._state.message = f"approved by {deciders}"
        self._changed = True
        await workflow.wait_condition(lambda: not self._changed)
        return self._state

    @vote.validator
    def _validate_vote(self, vote: Vote) -> None:
        problem = eligible(self._data, self._state, vote)
        if problem is None:
            return
        if self._state.status != "pending":
            raise errors.APPROVAL_CLOSED.error(problem)
        if "separation of duties" in problem:
            raise errors.SEPARATION_OF_DUTIES.error(problem)
        if "already voted" in problem:
            raise errors.ALREADY_VOTED.error(problem)
        raise errors.NOT_AN_APPROVER.error(problem)

    @workflow.run
    async def run(self, data: ApprovalInput) -> ApprovalOutcome:
        obligations = data.obligations
        deadline = self._created + timedelta(seconds=obligations.deadline_seconds)
        escalation = obligations.escalation
        escalate_at = self._created + timedelta(seconds=escalation.after_seconds) if escalation else None
        await self._record(deadline, escalate_at)
        try:
            while self._state.status == "pending":
                now = workflow.now()
                until = escalate_at if escalate_at is not None and not self._state.escalated else deadline
                try:
                    await workflow.wait_condition(lambda: self._changed, timeout=max(until - now, timedelta(0)))
                except TimeoutError:
                    if until == deadline:
                        self._state.status = "expired"
                        self._state.message = f"no decision within {obligations.deadline_seconds}s"
                    else:
                        self._state.escalated = True  # escalation targets are told (the inbox) and may decide
                self._changed = False
                await self._record(deadline, escalate_at)
            if self._changed:  # a vote that settled it arrived while the last state was being recorded
                self._changed = False
                await self._record(deadline, escalate_at)
        except asyncio.CancelledError:
            self._state.status = "cancelled"
            self._state.message = "the run that asked for it ended"
            await asyncio.shield(asyncio.ensure_future(self._record(deadline, escalate_at)))
            raise
        if self._state.status == "approved" and data.perform is not None:
            performed = await workflow.execute_activity(
                PERFORM_TRANSITION,
                data.perform,
                result_type=dict,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_PERFORM_RETRY,
            )
            self._state.performed = performed
            if not performed.get("performed"):
                self._state.message = f"{self._state.message}; the transition was refused: {performed.get('message')}"
            await self._record(deadline, escalate_at)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ApprovalOutcome(
            approval_id=data.approval_id,
            status=self._state.status,
            decided_by=[v.actor for v in self._state.votes],
            message=self._state.message,
        )

    async def _record(self, deadline: datetime, escalate_at: datetime | None) -> None:
        await workflow.execute_local_activity_method(
            ApprovalActivities.record,
            ApprovalRecord(
                input=self._data,
                state=self._state,
                created_ts=self._created,
                deadline_ts=deadline,
                escalate_ts=escalate_at,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD_RETRY,
        )
