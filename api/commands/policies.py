"""Approval-policy commands: write and read policies (admins write, every version kept), ask what they
would decide, list the decisions they made, and vote on the approvals they asked for. A transition's
check (``check_transition``) is here too, called by the transition command before it moves anything.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import AlreadyFinished, Gateway, WorkflowNotFound
from core.people import directory
from core.platform.contracts import Page
from core.policy import store
from core.policy.contracts import (
    POLICY_NAME,
    Action,
    ApprovalPublic,
    ApprovalRecord,
    ApprovalState,
    CheckRequest,
    DecisionPublic,
    EvaluateRequest,
    PolicyBody,
    PolicyDecision,
    PolicyPublic,
    PolicyVersionPublic,
    Subject,
    TransitionToPerform,
    Vote,
    VoteCreate,
)
from core.policy.evaluate import decide
from core.policy.gate import approval_asked, distributed
from core.process.contracts import TransitionCreate
from core.process.policies import transition_request
from workflows.policy.approval import PolicyApprovalWorkflow, approval_workflow_id

T = TypeVar("T")


class ApprovalTicket(BaseModel):
    """A request a policy sent to people first: 202, with the approval that decides it."""

    status: str = Field(description="'approval_required'")
    approval_id: uuid.UUID
    policy: str
    version: int
    reason: str
    link: str


def _name(name: str) -> str:
    if not re.fullmatch(POLICY_NAME, name):
        raise ApiError(
            422, "invalid_value", "a policy's name is lowercase letters, digits, '_' and '-', starting with a letter"
        )
    return name


async def save(name: str, body: PolicyBody, principal: Principal, engine: AsyncEngine) -> PolicyPublic:
    allow(principal, doing="write policies")
    async with engine.begin() as conn:
        return await store.save_policy(conn, _name(name), body, principal.name)


async def get(name: str, principal: Principal, engine: AsyncEngine) -> PolicyPublic:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await store.get_policy(conn, name)
    if found is None:
        raise ApiError(404, "not_found", f"no policy '{name}'")
    return found


async def listing(
    principal: Principal, engine: AsyncEngine, *, limit: int, offset: int, cursor: str | None
) -> Page[PolicyPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.policies_page(conn, limit=limit, offset=offset, cursor=cursor)


async def delete(name: str, principal: Principal, engine: AsyncEngine) -> None:
    allow(principal, doing="delete policies")
    async with engine.begin() as conn:
        if not await store.delete_policy(conn, name, principal.name):
            raise ApiError(404, "not_found", f"no policy '{name}'")


async def versions(name: str, principal: Principal, engine: AsyncEngine) -> list[PolicyVersionPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await store.versions(conn, name)
    if not found:
        raise ApiError(404, "not_found", f"no policy '{name}' was ever saved")
    return found


async def evaluate(body: EvaluateRequest, principal: Principal, engine: AsyncEngine) -> PolicyDecision:
    """What the policies would decide now, recording nothing."""
    allow(principal, *READERS)
    to_id = body.to_state if isinstance(body.to_state, int) else None
    to_name = body.to_state if isinstance(body.to_state, str) else None
    request = CheckRequest(
        subject=Subject(kind=body.subject_kind, name=body.subject, role=body.role),
        action=Action(
            kind=body.action_kind,
            name=body.target if body.action_kind != "transition" else f"{body.target}:{body.to_state}",
            template_code=body.target if body.action_kind == "transition" else None,
            to_state_id=to_id,
            to_state_name=to_name,
        ),
        arguments=body.arguments,
        entity=body.entity,
    )
    async with engine.connect() as conn:
        return decide(await store.active(conn, body.action_kind), request)


async def decisions(
    principal: Principal,
    engine: AsyncEngine,
    *,
    subject: str | None,
    policy: str | None,
    effect: str | None,
    action_kind: str | None,
    limit: int,
    offset: int,
    cursor: str | None,
) -> Page[DecisionPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.decisions_page(
            conn,
            subject=subject,
            policy=policy,
            effect=effect,
            action_kind=action_kind,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


# --------------------------------------------------------------------------- approvals


async def approvals(
    principal: Principal, engine: AsyncEngine, *, status: str | None, limit: int, offset: int, cursor: str | None
) -> Page[ApprovalPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.approvals_page(conn, status=status, limit=limit, offset=offset, cursor=cursor)


async def approval(approval_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> ApprovalPublic:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await store.get_approval(conn, approval_id)
    if found is None:
        raise ApiError(404, "not_found", f"no approval {approval_id}")
    return found


async def voter(principal: Principal, engine: AsyncEngine) -> tuple[list[str], list[str]]:
    """The voter's directory roles, and the people they stand in for now (out of office)."""
    async with engine.connect() as conn:
        roles = await directory.directory_roles(conn, principal.name)
        covering = await directory.covers(conn, principal.name, datetime.now(UTC))
    return roles, covering


async def vote(
    approval_id: uuid.UUID, body: VoteCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> ApprovalPublic:
    """Approve or reject. Who may (approvers by name or role, escalation targets once late, never the
    requester or someone standing in for them, each person once) is the approval workflow's rule."""
    allow(principal, *READERS)
    found = await approval(approval_id, principal, engine)
    if found.status != "pending":
        raise ApiError(409, "approval_closed", f"the approval is {found.status}: {found.message or ''}".rstrip(": "))
    roles, covering = await voter(principal, engine)
    ballot = Vote(
        actor=principal.name,
        role=principal.role,
        roles=roles,
        decision=body.decision,
        comment=body.comment,
        on_behalf_of=covering,
    )
    try:
        state = await gateway.update(found.workflow_id, PolicyApprovalWorkflow.vote, ballot)
    except WorkflowNotFound as exc:
        raise ApiError(409, "approval_closed", "the approval has ended") from exc
    return found.model_copy(update={"status": state.status, "votes": [v.model_dump(mode="json") for v in state.votes]})


# --------------------------------------------------------------------------- transitions


async def check_transition(
    instance_id: uuid.UUID, body: TransitionCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> ApprovalTicket | None:
    """The policies on a transition asked through the API: None to go ahead; a denial is a 403 naming the
    policy; an approval starts its workflow, which performs the transition once approved (a 202 ticket).
    When no transition policy exists, this costs nothing but a look at the process's cache of them
    (core/policy/store.py: at most CACHE_SECONDS old, forgotten when this process saves a policy)."""
    if store.known_empty("transition"):
        return None  # no round trip at all while the process knows there is no transition policy
    async with engine.begin() as conn:
        policies = await store.active_cached(conn, "transition")
        if not policies:
            return None
        roles = await directory.directory_roles(conn, principal.name)
        subject = Subject(kind="person", name=principal.name, role=principal.role, roles=roles)
        asked_about = await transition_request(conn, instance_id, body.to_state_id, body.fields, subject)
        if asked_about is None:
            return None  # the transition command answers the 404
        request, view = asked_about.request, asked_about.view
        approval_id = uuid.uuid4()
        key = f"policy:transition:{instance_id}:{approval_id}"
        decision = decide(policies, request)
        if decision.policy is None or decision.effect == "allow":
            if decision.policy is not None:
                await store.record_decision(
                    conn, request, decision, key=key, outcome="allowed", context={"instance_id": str(instance_id)}
                )
            return None
        context = {"instance_id": str(instance_id), "from_state": view.current_state.name}
        await store.record_decision(
            conn,
            request,
            decision,
            key=key,
            outcome="denied" if decision.effect == "deny" else "pending",
            context=context,
            approval_id=approval_id if decision.effect == "require_approval" else None,
        )
    if decision.effect == "deny":
        raise ApiError(403, "policy_denied", decision.reason)
    assert decision.approval is not None and decision.version is not None
    asked = approval_asked(
        request,
        decision,
        approval_id=str(approval_id),
        title=f"{principal.name} wants to move {view.template_code} to "
        f"{request.action.to_state_name or body.to_state_id}",
        context=context,
        perform=TransitionToPerform(
            instance_id=str(instance_id),
            to_state_id=body.to_state_id,
            comment=body.comment,
            fields=body.fields,
            actor=principal.name,
            actor_role=principal.role,
        ),
    )
    # The row first, so the ticket's link answers at once (the workflow writes over it as it goes).
    now = datetime.now(UTC)
    escalation = asked.obligations.escalation
    async with engine.begin() as conn:
        asked = await distributed(conn, asked, now)
        await store.record_approval(
            conn,
            ApprovalRecord(
                input=asked,
                state=ApprovalState(),
                created_ts=now,
                deadline_ts=now + timedelta(seconds=asked.obligations.deadline_seconds),
                escalate_ts=now + timedelta(seconds=escalation.after_seconds) if escalation else None,
            ),
        )
    try:
        await gateway.start(
            PolicyApprovalWorkflow.run,
            asked,
            workflow_id=approval_workflow_id(str(approval_id)),
            summary=asked.title[:200],
        )
    except AlreadyFinished as exc:  # a fresh id: cannot happen, but never start twice
        raise ApiError(409, "approval_closed", "this approval has already ended") from exc
    return ApprovalTicket(
        status="approval_required",
        approval_id=approval_id,
        policy=decision.policy,
        version=decision.version,
        reason=decision.reason,
        link=f"/api/v1/approvals/{approval_id}",
    )
