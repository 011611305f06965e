"""The work queue (seed 001) under /api/v1/orchestrator: the prioritised queue, the demo sequence, the
lifecycle of an item (each an update of its workflow ``work-item-<id>``), and the signal interpreter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.commands import work as commands
from api.deps import EngineDep, GatewayDep, IdempotencyKey, Operator, Reader
from api.errors import ApiError
from core.work import store
from core.work.contracts import (
    DemoInitialize,
    DemoStatus,
    EscalateCreate,
    InterpretResult,
    ItemChange,
    SignalsInput,
    SkipCreate,
    SnoozeCreate,
    StatusCreate,
    WorkItemPublic,
    item_input,
)
from workflows.work.item import WorkItemWorkflow
from workflows.work.signals import WorkSignalsWorkflow

router = APIRouter(prefix="/api/v1/orchestrator", tags=["work queue"])

Assignee = Annotated[str | None, Query(min_length=1, max_length=200, description="Default: the caller")]


@router.get("/queue", response_model=list[WorkItemPublic])
async def get_queue(
    engine: EngineDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
    demo: bool = False,
    assignee: Assignee = None,
) -> list[WorkItemPublic]:
    """Open items: by ``trigger_conditions.order`` in demo mode, otherwise by priority score (highest
    first). Default: the caller's own items and their role's; ``assignee`` names another (admins)."""
    commands.may_read_queue_of(principal, assignee)
    async with engine.connect() as conn:
        return await store.queue(
            conn, assignees=[assignee] if assignee else commands.mine(principal), demo=demo, limit=limit
        )


@router.get("/executions/{item_id}", response_model=WorkItemPublic)
async def get_item(item_id: uuid.UUID, engine: EngineDep, principal: Reader) -> WorkItemPublic:
    return await commands.get(item_id, principal, engine)


@router.post("/demo/initialize", response_model=list[WorkItemPublic], status_code=201)
async def initialize_demo(
    body: DemoInitialize, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> list[WorkItemPublic]:
    """Create the demo sequence's items for an entity (idempotent: open items are returned, not doubled)."""
    assignee = body.assignee or principal.name
    async with engine.begin() as conn:
        if not await store.entity_exists(conn, body.entity_id):
            raise ApiError(422, "unknown_entity", f"entity_id {body.entity_id} is not an existing entity")
        definitions = await store.list_definitions(conn, demo=True, active=True)
        ids = await store.create_items(
            conn, [(d, body.entity_id, assignee) for d in definitions], now=datetime.now(UTC)
        )
        items = await store.get_items(conn, ids)
    for item in items:
        await gateway.start(
            WorkItemWorkflow.run, item_input(item), workflow_id=item.workflow_id, summary="Work item (demo)"
        )
    async with engine.begin() as conn:
        await store.mark_started(conn, ids)
    return sorted(items, key=lambda i: i.order or 0)


@router.get("/demo/status", response_model=DemoStatus)
async def demo_status(engine: EngineDep, principal: Reader, assignee: Assignee = None) -> DemoStatus:
    """Progress through the demo sequence: how many items, how many done, the current one and the next.
    Default: the caller's; ``assignee`` names another (admins), as for the queue."""
    commands.may_read_queue_of(principal, assignee)
    async with engine.connect() as conn:
        items = await store.demo_items(conn, assignee=assignee or principal.name)
    pending = [i for i in items if i.status not in ("completed", "skipped")]
    return DemoStatus(
        total=len(items),
        completed=sum(1 for i in items if i.status == "completed"),
        current=pending[0] if pending else None,
        next=pending[1] if len(pending) > 1 else None,
    )


@router.post("/executions/{item_id}/snooze", response_model=WorkItemPublic)
async def snooze(
    item_id: uuid.UUID,
    body: SnoozeCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Reader,
    idempotency_key: IdempotencyKey = None,
) -> WorkItemPublic:
    """Snooze for 1-90 days: the answer carries the new score; the item resurfaces by itself."""
    change = ItemChange(action="snooze", actor=principal.name, days=body.days)
    return await commands.change(item_id, change, principal, engine, gateway, idempotency_key)


@router.post("/executions/{item_id}/skip", response_model=WorkItemPublic)
async def skip(
    item_id: uuid.UUID,
    body: SkipCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Reader,
    idempotency_key: IdempotencyKey = None,
) -> WorkItemPublic:
    """Skip for good, with the reason (nothing changes a skipped item)."""
    change = ItemChange(action="skip", actor=principal.name, reason=body.reason)
    return await commands.change(item_id, change, principal, engine, gateway, idempotency_key)


@router.post("/executions/{item_id}/escalate", response_model=WorkItemPublic)
async def escalate(
    item_id: uuid.UUID,
    body: EscalateCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Reader,
    idempotency_key: IdempotencyKey = None,
) -> WorkItemPublic:
    """Escalate (not reassign): the assignee stays, the escalation user is notified and may act too."""
    change = ItemChange(action="escalate", actor=principal.name, escalation_user_id=body.escalation_user_id)
    return await commands.change(item_id, change, principal, engine, gateway, idempotency_key)


@router.patch("/executions/{item_id}/status", response_model=WorkItemPublic)
async def set_status(
    item_id: uuid.UUID,
    body: StatusCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Reader,
    idempotency_key: IdempotencyKey = None,
) -> WorkItemPublic:
    """Start (``underway``), complete, or return an item to ``not_started``; sets ``started_at`` /
    ``completed_at`` and merges ``execution_data`` into the stored progress."""
    change = ItemChange(action="status", actor=principal.name, status=body.status, execution_data=body.execution_data)
    return await commands.change(item_id, change, principal, engine, gateway, idempotency_key)


@router.post("/signals/interpret", response_model=InterpretResult)
async def interpret_signals(gateway: GatewayDep, _: Operator) -> InterpretResult:
    """Run the signal interpreter now (it also runs daily): items for the entities whose signals meet an
    active definition's thresholds, never two open items for one definition and entity; every open
    item rescored."""
    run = f"work-signals-{uuid.uuid4().hex[:12]}"
    result: InterpretResult = await gateway.execute(WorkSignalsWorkflow.run, SignalsInput(), workflow_id=run)
    return result
