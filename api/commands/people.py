"""People and fair sharing of work (core/people): the directory, absences with delegates, reassigning one
or many items, handing over everything someone holds, and handing out what a role pool holds once loads
change. Work items change in their table (their assignee is not workflow state); a step task changes
through its run's ``reassign_task`` update, which owns it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import Gateway, WorkflowNotFound
from core.people import directory
from core.people.directory import (
    AbsenceBody,
    AbsencePublic,
    AssignmentChangePublic,
    Choice,
    PersonBody,
    PersonPublic,
)
from core.platform.contracts import RequestModel
from core.steps import store as steps_store
from core.steps.contracts import TaskReassignRequest
from core.work import store as work_store
from workflows.steps.interpreter import StepWorkflowRun

ItemRef = Annotated[
    str,
    Field(
        min_length=41,
        max_length=41,
        pattern=r"^(work|task):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    ),
]
MAX_ITEMS = 100


class ReassignRequest(RequestModel):
    items: list[ItemRef] = Field(min_length=1, max_length=MAX_ITEMS, description="Inbox ids: work:<id>, task:<id>")
    to: str = Field(min_length=1, max_length=200, description="A person (or a role pool)")
    reason: str = Field(min_length=1, max_length=1000)


class HandoverRequest(RequestModel):
    to: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=1000)


class ItemMoved(BaseModel):
    item: str
    outcome: Literal["moved", "not_open", "not_found"]
    assignee: str | None = None
    on_behalf_of: str | None = None


class MoveResult(BaseModel):
    moved: int
    items: list[ItemMoved]


class RebalanceResult(BaseModel):
    handed_out: int


def _now() -> datetime:
    return datetime.now(UTC)


def _self_or(principal: Principal, name: str, *roles: Literal["operator"]) -> None:
    if principal.name != name:
        allow(principal, *roles, doing=f"change {name}'s work or absences")


async def people(principal: Principal, engine: AsyncEngine, role: str | None) -> list[PersonPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await directory.people(conn, _now(), role)


async def save_person(name: str, body: PersonBody, principal: Principal, engine: AsyncEngine) -> PersonPublic:
    allow(principal, doing="edit the people directory")
    async with engine.begin() as conn:
        saved = await directory.save_person(conn, name, body)
        await work_store.rebalance(conn, now=_now())  # a raised cap or a new member takes waiting work
    return saved


async def set_absence(name: str, body: AbsenceBody, principal: Principal, engine: AsyncEngine) -> AbsencePublic:
    _self_or(principal, name, "operator")
    if body.delegate == name:
        raise ApiError(422, "invalid_value", "a person cannot delegate to themselves")
    async with engine.begin() as conn:
        return await directory.add_absence(conn, name, body, principal.name)


async def end_absence(name: str, principal: Principal, engine: AsyncEngine) -> None:
    _self_or(principal, name, "operator")
    async with engine.begin() as conn:
        if not await directory.end_absences(conn, name, _now()):
            raise ApiError(404, "not_found", f"{name} has no current or coming absence")


async def changes(
    principal: Principal, engine: AsyncEngine, item: str | None, limit: int
) -> list[AssignmentChangePublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await directory.changes(conn, item, limit)


async def _target(engine: AsyncEngine, to: str, how: str) -> Choice:
    """Who items given to ``to`` go to now: they, or their delegate on their behalf while they are away."""
    async with engine.connect() as conn:
        target = await directory.direct(conn, to, _now())
    return Choice(target.assignee, target.on_behalf_of, how)


async def _move(
    ref: str, choice: Choice, principal: Principal, engine: AsyncEngine, gateway: Gateway, *, reason: str | None
) -> ItemMoved:
    kind, _, raw = ref.partition(":")
    item_id = uuid.UUID(raw)
    async with engine.begin() as conn:
        if kind == "work":
            moved = await work_store.reassign_item(
                conn, item_id, choice, actor=principal.name, reason=reason, now=_now()
            )
            if moved is None:
                found = await work_store.get_item(conn, item_id)
                return ItemMoved(item=ref, outcome="not_found" if found is None else "not_open")
            return ItemMoved(item=ref, outcome="moved", assignee=moved.assignee, on_behalf_of=moved.on_behalf_of)
        task = await steps_store.get_task(conn, item_id)
    if task is None:
        return ItemMoved(item=ref, outcome="not_found")
    if task.status != "open":
        return ItemMoved(item=ref, outcome="not_open")
    request = TaskReassignRequest(
        path=task.path, to=choice.assignee, on_behalf_of=choice.on_behalf_of, actor=principal.name, reason=reason
    )
    try:
        await gateway.update(task.temporal_workflow_id, StepWorkflowRun.reassign_task, request)
    except (WorkflowNotFound, ApiError):
        return ItemMoved(item=ref, outcome="not_open")
    async with engine.begin() as conn:
        await directory.log_change(
            conn, item=ref, from_assignee=task.assignee, choice=choice, actor=principal.name, reason=reason
        )
    return ItemMoved(item=ref, outcome="moved", assignee=choice.assignee, on_behalf_of=choice.on_behalf_of)


async def reassign(body: ReassignRequest, principal: Principal, engine: AsyncEngine, gateway: Gateway) -> MoveResult:
    """Give each item to ``to`` (their delegate while they are away), recorded with who and why."""
    allow(principal, "operator", doing="reassign work")
    choice = await _target(engine, body.to, "reassign")
    moved = [
        await _move(ref, choice, principal, engine, gateway, reason=body.reason) for ref in dict.fromkeys(body.items)
    ]
    return MoveResult(moved=sum(m.outcome == "moved" for m in moved), items=moved)


async def handover(
    name: str, body: HandoverRequest, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> MoveResult:
    """Everything ``name`` holds now (open work items and step tasks) to ``to``, in bulk."""
    _self_or(principal, name, "operator")
    async with engine.connect() as conn:
        work = await work_store.open_items_of(conn, name)
        tasks = [t.id for t in await steps_store.open_tasks(conn) if t.assignee == name]
    refs = [f"work:{i}" for i in work] + [f"task:{i}" for i in tasks]
    reason = body.reason or f"handed over by {principal.name}"
    choice = await _target(engine, body.to, "handover")
    moved = [await _move(ref, choice, principal, engine, gateway, reason=reason) for ref in refs]
    return MoveResult(moved=sum(m.outcome == "moved" for m in moved), items=moved)


async def rebalance(principal: Principal, engine: AsyncEngine) -> RebalanceResult:
    allow(principal, "operator", doing="rebalance work")
    async with engine.begin() as conn:
        return RebalanceResult(handed_out=await work_store.rebalance(conn, now=_now()))
