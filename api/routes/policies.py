"""The one approval policy (core/policy; docs/concepts/policies.md): policies (admins write them, every
version kept), what they would decide, the decisions they made, and the approvals they asked for."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.commands import policies as commands
from api.deps import Admin, EngineDep, GatewayDep, Reader
from api.pagination import Cursor, Limit, Offset
from core.platform.contracts import Page
from core.policy.contracts import (
    POLICY_NAME,
    ApprovalPublic,
    DecisionPublic,
    EvaluateRequest,
    PolicyBody,
    PolicyDecision,
    PolicyPublic,
    PolicyVersionPublic,
    VoteCreate,
)

router = APIRouter(prefix="/api/v1", tags=["policies"])
PolicyName = Annotated[str, Path(min_length=1, max_length=100, pattern=POLICY_NAME)]


@router.get("/policies", response_model=Page[PolicyPublic])
async def list_policies(
    engine: EngineDep, principal: Reader, limit: Limit = 50, offset: Offset = 0, cursor: Cursor = None
) -> Page[PolicyPublic]:
    return await commands.listing(principal, engine, limit=limit, offset=offset, cursor=cursor)


@router.post("/policy-decisions/evaluate", response_model=PolicyDecision)
async def evaluate_policies(body: EvaluateRequest, engine: EngineDep, principal: Reader) -> PolicyDecision:
    """What the enabled policies would decide for this actor, action and arguments; nothing is recorded."""
    return await commands.evaluate(body, principal, engine)


@router.put("/policies/{name}", response_model=PolicyPublic)
async def save_policy(name: PolicyName, body: PolicyBody, engine: EngineDep, principal: Admin) -> PolicyPublic:
    """Create the policy, or save its next version (each version is kept, with who saved it). Its
    condition is CEL, checked and bounded here; its effect is allow, deny or require_approval."""
    return await commands.save(name, body, principal, engine)


@router.get("/policies/{name}", response_model=PolicyPublic)
async def get_policy(name: PolicyName, engine: EngineDep, principal: Reader) -> PolicyPublic:
    return await commands.get(name, principal, engine)


@router.delete("/policies/{name}", status_code=204)
async def delete_policy(name: PolicyName, engine: EngineDep, principal: Admin) -> None:
    """Remove the policy (its versions stay, with the deletion as the last)."""
    await commands.delete(name, principal, engine)


@router.get("/policies/{name}/versions", response_model=list[PolicyVersionPublic])
async def policy_versions(name: PolicyName, engine: EngineDep, principal: Reader) -> list[PolicyVersionPublic]:
    return await commands.versions(name, principal, engine)


@router.get("/policy-decisions", response_model=Page[DecisionPublic])
async def list_decisions(
    engine: EngineDep,
    principal: Reader,
    subject: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    policy: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    effect: Literal["allow", "deny", "require_approval"] | None = None,
    action_kind: Literal["tool", "transition", "rule_action"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[DecisionPublic]:
    """Who was allowed or denied what, when, under which policy and version, newest first; an approval's
    decision carries its outcome (approved, rejected, expired) and who decided."""
    return await commands.decisions(
        principal,
        engine,
        subject=subject,
        policy=policy,
        effect=effect,
        action_kind=action_kind,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


@router.get("/approvals", response_model=Page[ApprovalPublic])
async def list_approvals(
    engine: EngineDep,
    principal: Reader,
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[ApprovalPublic]:
    return await commands.approvals(principal, engine, status=status, limit=limit, offset=offset, cursor=cursor)


@router.get("/approvals/{approval_id}", response_model=ApprovalPublic)
async def get_approval(approval_id: uuid.UUID, engine: EngineDep, principal: Reader) -> ApprovalPublic:
    return await commands.approval(approval_id, principal, engine)


@router.post("/approvals/{approval_id}/decision", response_model=ApprovalPublic)
async def vote_on_approval(
    approval_id: uuid.UUID, body: VoteCreate, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> ApprovalPublic:
    """Approve or reject: an approver by name or role (escalation targets too once it is late); never the
    requester, nor someone standing in for them (separation of duties); each person counts once."""
    return await commands.vote(approval_id, body, principal, engine, gateway)
