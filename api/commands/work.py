"""Work item commands: read one, and change it (snooze, skip, escalate, status) through its workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import AlreadyFinished, Gateway
from core.platform.contracts import Page
from core.work import store
from core.work.contracts import FINAL, ItemChange, WorkItemPublic, item_input
from workflows.work.item import WorkItemWorkflow


def mine(principal: Principal) -> list[str]:
    """Whose items a caller works: their own name and their role."""
    return [principal.name, principal.role]


async def _item(engine: AsyncEngine, item_id: uuid.UUID) -> WorkItemPublic:
    async with engine.connect() as conn:
        item = await store.get_item(conn, item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no work item {item_id}")
    return item


def _may_work(item: WorkItemPublic, principal: Principal) -> None:
    holders = [item.assignee, item.escalation_user_id, item.on_behalf_of]  # a delegate's item: its owner too
    if principal.role == "admin" or any(h in mine(principal) for h in holders if h):
        return
    raise ApiError(
        403,
        "forbidden",
        f"work item {item.id} is assigned to '{item.assignee}'"
        + (f" and escalated to '{item.escalation_user_id}'" if item.escalation_user_id else "")
        + "; only they or an admin may change it",
    )


async def get(item_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> WorkItemPublic:
    allow(principal, *READERS)
    return await _item(engine, item_id)


async def get_many(item_ids: list[uuid.UUID], principal: Principal, engine: AsyncEngine) -> list[WorkItemPublic]:
    """Several items in one read, in the given order (missing ones left out)."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.get_items(conn, item_ids)


async def change(
    item_id: uuid.UUID,
    change: ItemChange,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    idempotency_key: str | None = None,
) -> WorkItemPublic:
    """One change of the item, by its assignee, its escalation user or an admin."""
    item = await _item(engine, item_id)
    _may_work(item, principal)
    try:
        # With start: an item whose workflow a crash never started gets it now.
        changed = await gateway.start_with_update(
            WorkItemWorkflow.run,
            item_input(item),
            WorkItemWorkflow.change,
            change,
            workflow_id=item.workflow_id,
            summary=f"Work item: {item.definition_name}",
            update_id=f"{principal.name}:{idempotency_key}" if idempotency_key else None,
        )
    except AlreadyFinished as exc:
        raise ApiError(409, "invalid_transition", f"the item is {item.status}; nothing changes it") from exc
    if changed.status in FINAL and item.status not in FINAL:
        # Someone's load dropped: a role pool's waiting items may go out now (core/people).
        async with engine.begin() as conn:
            await store.rebalance(conn, now=datetime.now(UTC))
    return changed


def may_read_queue_of(principal: Principal, assignee: str | None) -> None:
    """One ownership rule for everything read by assignee (the queue, the demo sequence's status): one's
    own name and role; another's only for admins."""
    if assignee is not None and assignee not in mine(principal) and principal.role != "admin":
        raise ApiError(403, "forbidden", "only admins read another person's queue")


async def queue_page(
    principal: Principal,
    engine: AsyncEngine,
    *,
    assignee: str | None = None,
    workflow_type: str | None = None,
    label: str | None = None,
    due_before: datetime | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WorkItemPublic]:
    """The queue: one's own items (by name or role, or escalated to one); an admin sees everyone's, or
    one assignee's."""
    allow(principal, *READERS)
    may_read_queue_of(principal, assignee)
    assignees = [assignee] if assignee else (None if principal.role == "admin" else mine(principal))
    async with engine.connect() as conn:
        return await store.queue_page(
            conn,
            workflow_type=workflow_type,
            label=label,
            assignees=assignees,
            due_before=due_before,
            status=status,
            limit=limit,
            cursor=cursor,
        )


async def workflow_types(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await store.workflow_types(conn)
