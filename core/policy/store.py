"""Policies, their versions, the decisions they make and the approvals they ask for, in Postgres.

``check`` is what every caller runs before acting: the enabled policies of the action's kind (a small
indexed table), the pure decision (core/policy/evaluate.py), and, when a policy applied, its decision
recorded under the caller's key, so a retried check records it once.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page
from core.policy.contracts import (
    MAX_ARGUMENTS_BYTES,
    ApprovalPublic,
    ApprovalRecord,
    CheckRequest,
    DecisionPublic,
    Policy,
    PolicyBody,
    PolicyDecision,
    PolicyPublic,
    PolicyVersionPublic,
)
from core.policy.evaluate import decide
from core.policy.tables import PolicyVersion, StoredApproval, StoredDecision, StoredPolicy


def _public(row: Any) -> PolicyPublic:
    return PolicyPublic(
        name=row.name,
        version=row.version,
        body=PolicyBody.model_validate(row.body),
        enabled=row.enabled,
        updated_by=row.updated_by,
        updated_ts=row.updated_ts,
    )


async def save_policy(conn: AsyncConnection, name: str, body: PolicyBody, actor: str) -> PolicyPublic:
    """Create the policy or write its next version; every version is kept with who saved it."""
    document = body.model_dump(mode="json")
    # A name saved again after its deletion continues its history (versions are never reused).
    first_version = (
        select(func.coalesce(func.max(PolicyVersion.version), 0) + 1)
        .where(PolicyVersion.name == name)
        .scalar_subquery()
    )
    row = (
        await conn.execute(
            insert(StoredPolicy)
            .values(
                name=name,
                version=first_version,
                action_kind=body.target.kind,
                body=document,
                enabled=body.enabled,
                updated_by=actor,
            )
            .on_conflict_do_update(
                index_elements=[StoredPolicy.name],
                set_={
                    "version": StoredPolicy.version + 1,
                    "action_kind": body.target.kind,
                    "body": document,
                    "enabled": body.enabled,
                    "updated_by": actor,
                    "updated_ts": func.now(),
                },
            )
            .returning(StoredPolicy.__table__)
        )
    ).one()
    await conn.execute(
        insert(PolicyVersion).values(name=name, version=row.version, change="saved", body=document, actor=actor)
    )
    forget_cached()
    return _public(row)


async def delete_policy(conn: AsyncConnection, name: str, actor: str) -> bool:
    row = (
        await conn.execute(delete(StoredPolicy).where(StoredPolicy.name == name).returning(StoredPolicy.version))
    ).first()
    if row is None:
        return False
    forget_cached()
    await conn.execute(
        insert(PolicyVersion).values(name=name, version=row.version + 1, change="deleted", body=None, actor=actor)
    )
    return True


async def get_policy(conn: AsyncConnection, name: str) -> PolicyPublic | None:
    row = (await conn.execute(select(StoredPolicy.__table__).where(StoredPolicy.name == name))).first()
    return _public(row) if row is not None else None


async def policies_page(conn: AsyncConnection, *, limit: int, offset: int, cursor: str | None) -> Page[PolicyPublic]:
    return await fetch_page(
        conn,
        select(StoredPolicy.__table__),
        order=Order(StoredPolicy.name),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=_public,
    )


async def versions(conn: AsyncConnection, name: str) -> list[PolicyVersionPublic]:
    rows = await conn.execute(
        select(PolicyVersion.__table__).where(PolicyVersion.name == name).order_by(PolicyVersion.version)
    )
    return [PolicyVersionPublic.model_validate(r._asdict()) for r in rows]


# The transition check sits on the API's hot path: each process keeps the enabled policies of a kind for
# at most CACHE_SECONDS, and forgets them at once when it saves or deletes one itself. A policy saved
# through another API process applies there within CACHE_SECONDS (docs/concepts/policies.md).
CACHE_SECONDS = 2.0
_cached: dict[str, tuple[float, list[Policy]]] = {}


def forget_cached() -> None:
    _cached.clear()


def known_empty(kind: str) -> bool:
    """Whether this process knows, from its cache, that no enabled policy of ``kind`` exists."""
    found = _cached.get(kind)
    return found is not None and found[0] > time.monotonic() and not found[1]


async def active_cached(conn: AsyncConnection, kind: str) -> list[Policy]:
    now = time.monotonic()
    found = _cached.get(kind)
    if found is not None and found[0] > now:
        return found[1]
    policies = await active(conn, kind)
    _cached[kind] = (now + CACHE_SECONDS, policies)
    return policies


async def active(conn: AsyncConnection, kind: str) -> list[Policy]:
    rows = await conn.execute(
        select(StoredPolicy.name, StoredPolicy.version, StoredPolicy.body).where(
            StoredPolicy.enabled.is_(True), StoredPolicy.action_kind == kind
        )
    )
    return [Policy(name=r.name, version=r.version, body=PolicyBody.model_validate(r.body)) for r in rows]


def bounded_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """What a decision keeps of the arguments: all of them, or a note when they are too large."""
    text = json.dumps(arguments, default=str)
    if len(text) <= MAX_ARGUMENTS_BYTES:
        return arguments
    return {"_truncated": True, "_bytes": len(text), "_preview": text[:2000]}


async def check(
    conn: AsyncConnection, request: CheckRequest, *, key: str, context: dict[str, Any] | None = None
) -> PolicyDecision:
    """Decide ``request``; record the decision under ``key`` when a policy applied (``allowed``/``denied``
    at once, ``pending`` for an approval, which its workflow settles)."""
    decision = decide(await active(conn, request.action.kind), request)
    if decision.policy is not None:
        outcome = {"allow": "allowed", "deny": "denied", "require_approval": "pending"}[decision.effect]
        await record_decision(conn, request, decision, key=key, outcome=outcome, context=context or {})
    return decision


async def record_decision(
    conn: AsyncConnection,
    request: CheckRequest,
    decision: PolicyDecision,
    *,
    key: str,
    outcome: str,
    context: dict[str, Any],
    approval_id: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        insert(StoredDecision)
        .values(
            decision_key=key,
            subject_kind=request.subject.kind,
            subject=request.subject.name,
            action_kind=request.action.kind,
            target=request.action.name,
            arguments=bounded_arguments(request.arguments),
            effect=decision.effect,
            policy_name=decision.policy,
            policy_version=decision.version,
            reason=decision.reason,
            outcome=outcome,
            approval_id=approval_id,
            context=context,
        )
        .on_conflict_do_nothing(index_elements=[StoredDecision.decision_key])
    )


async def settle_decision(
    conn: AsyncConnection, approval_id: uuid.UUID, outcome: str, decided_by: list[str], ts: datetime
) -> None:
    """The approval's outcome on the decision that asked for it."""
    await conn.execute(
        update(StoredDecision)
        .where(StoredDecision.approval_id == approval_id)
        .values(outcome=outcome, decided_by=decided_by, decided_ts=ts)
    )


async def link_approval(conn: AsyncConnection, key: str, approval_id: uuid.UUID) -> None:
    await conn.execute(
        update(StoredDecision)
        .where(StoredDecision.decision_key == key, StoredDecision.approval_id.is_(None))
        .values(approval_id=approval_id)
    )


async def decisions_page(
    conn: AsyncConnection,
    *,
    subject: str | None,
    policy: str | None,
    effect: str | None,
    action_kind: str | None,
    limit: int,
    offset: int,
    cursor: str | None,
) -> Page[DecisionPublic]:
    stmt = select(StoredDecision.__table__)
    if subject is not None:
        stmt = stmt.where(StoredDecision.subject == subject)
    if policy is not None:
        stmt = stmt.where(StoredDecision.policy_name == policy)
    if effect is not None:
        stmt = stmt.where(StoredDecision.effect == effect)
    if action_kind is not None:
        stmt = stmt.where(StoredDecision.action_kind == action_kind)
    return await fetch_page(
        conn,
        stmt,
        order=Order(StoredDecision.ts, StoredDecision.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=DecisionPublic.model_validate,
    )


# --------------------------------------------------------------------------- approvals


async def record_approval(conn: AsyncConnection, record: ApprovalRecord) -> None:
    """The approval's row as its workflow sees it now; when it has ended, its decision's outcome too."""
    data, state = record.input, record.state
    obligations = data.obligations
    values: dict[str, Any] = {
        "status": state.status,
        "votes": [v.model_dump(mode="json") for v in state.votes],
        "escalated": state.escalated,
        "message": state.message,
    }
    decided_ts = max((v.ts for v in state.votes if v.ts is not None), default=None)
    if state.status != "pending":
        values["decided_ts"] = decided_ts or record.deadline_ts
    approval_id = uuid.UUID(data.approval_id)
    await conn.execute(
        insert(StoredApproval)
        .values(
            id=approval_id,
            workflow_id=f"approval-{data.approval_id}",
            title=data.title,
            requester=data.requester,
            subject_kind=data.subject.kind,
            subject=data.subject.name,
            action_kind=data.action.kind,
            target=data.action.name,
            arguments=bounded_arguments(data.arguments),
            policy_name=data.policy,
            policy_version=data.version,
            reason=data.reason,
            approvers=obligations.approvers.model_dump(mode="json"),
            required=obligations.count,
            separation_of_duties=obligations.separation_of_duties,
            escalate_to=obligations.escalation.to if obligations.escalation else [],
            deadline_ts=record.deadline_ts,
            escalate_ts=record.escalate_ts,
            created_ts=record.created_ts,
            context=data.context,
            **values,
        )
        .on_conflict_do_update(index_elements=[StoredApproval.id], set_=values)
    )
    if state.status != "pending":
        deciders = [v.actor for v in state.votes]
        await settle_decision(conn, approval_id, state.status, deciders, values["decided_ts"])


def approval_public(row: Any) -> ApprovalPublic:
    return ApprovalPublic.model_validate(row)


async def get_approval(conn: AsyncConnection, approval_id: uuid.UUID) -> ApprovalPublic | None:
    row = (await conn.execute(select(StoredApproval.__table__).where(StoredApproval.id == approval_id))).first()
    return approval_public(row) if row is not None else None


async def pending_approvals(conn: AsyncConnection, limit: int = 500) -> list[ApprovalPublic]:
    rows = await conn.execute(
        select(StoredApproval.__table__)
        .where(StoredApproval.status == "pending")
        .order_by(StoredApproval.created_ts)
        .limit(limit)
    )
    return [approval_public(r) for r in rows]


async def approvals_page(
    conn: AsyncConnection, *, status: str | None, limit: int, offset: int, cursor: str | None
) -> Page[ApprovalPublic]:
    stmt = select(StoredApproval.__table__)
    if status is not None:
        stmt = stmt.where(StoredApproval.status == status)
    return await fetch_page(
        conn,
        stmt,
        order=Order(StoredApproval.created_ts, StoredApproval.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=approval_public,
    )
