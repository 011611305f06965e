"""Process instances: start, read, list, transition, approve/reject.

The hot path reads no database row: an instance's workflow id derives from its id, a start is one
update-with-start round trip, and a transition is one update. The database is read only to explain
a failure (404 against 409) and to answer reads of finished instances.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import EngineDep, GatewayDep, IdempotencyKey, Operator, Reader, SettingsDep
from api.errors import ApiError
from api.gateway import AlreadyFinished, WorkflowNotFound
from api.pagination import Cursor, Limit, Offset
from core.platform.contracts import Page
from core.platform.ids import derived_id
from core.process import instances
from core.process.contracts import (
    AcknowledgeCreate,
    AcknowledgeRequest,
    CancelCreate,
    CancelRequest,
    DecisionCreate,
    DecisionRequest,
    InstanceCreate,
    InstanceEvent,
    InstanceView,
    TransitionCreate,
    TransitionRequest,
)
from core.process.ids import process_workflow_id
from core.process.starting import StartRefused, prepare_start
from workflows.process.instance import ProcessInstanceWorkflow

router = APIRouter(prefix="/api/v1/workflow-instance", tags=["instances"])


@router.post("", response_model=InstanceView, status_code=201)
async def start_instance(
    body: InstanceCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> InstanceView:
    """Start an instance; answers once its start state is recorded (one update-with-start round trip)."""
    instance_id = (
        str(derived_id("instance", principal.name, body.template_code, idempotency_key))
        if idempotency_key
        else str(uuid.uuid4())
    )
    async with engine.connect() as conn:
        try:
            start = await prepare_start(conn, body, instance_id=instance_id, actor=principal.name, settings=settings)
        except StartRefused as refused:
            raise ApiError(422, refused.code, refused.message) from refused
    try:
        return await gateway.start_with_update(
            ProcessInstanceWorkflow.run,
            start.data,
            ProcessInstanceWorkflow.wait_ready,
            workflow_id=start.workflow_id,
            search_attributes=start.search_attributes,
            summary=start.summary,
        )
    except AlreadyFinished:
        # A retry (same Idempotency-Key) of an instance that has already finished.
        return await _from_database(engine, uuid.UUID(instance_id))


@router.get("", response_model=Page[InstanceView])
async def list_instances(
    engine: EngineDep,
    _: Reader,
    template_code: str | None = None,
    state_id: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    status: Annotated[str | None, Query(pattern="^(active|completed|cancelled)$")] = None,
    root_entity_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[InstanceView]:
    """Lists from the database projection (written by the workflow's activities as it moves), newest
    first."""
    async with engine.connect() as conn:
        return await instances.instances_page(
            conn,
            template_code=template_code,
            state_id=state_id,
            status=status,
            root_entity_id=root_entity_id,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


async def _from_database(engine: EngineDep, instance_id: uuid.UUID) -> InstanceView:
    async with engine.connect() as conn:
        view = await instances.get_view(conn, instance_id)
    if view is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    return view


@router.get("/{instance_id}", response_model=InstanceView)
async def get_instance(instance_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, _: Reader) -> InstanceView:
    """From the running workflow (authoritative, includes in-flight state), else from the database."""
    async with engine.connect() as conn:
        info = await instances.get_handle_info(conn, instance_id)
    if info is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    if info["workflow_status"] == "active":
        live = await gateway.query(info["workflow_id"], ProcessInstanceWorkflow.view)
        if live is not None:
            return live
    return await _from_database(engine, instance_id)


@router.get("/{instance_id}/events", response_model=Page[InstanceEvent])
async def list_instance_events(
    instance_id: uuid.UUID, engine: EngineDep, _: Reader, limit: Limit = 100, offset: Offset = 0, cursor: Cursor = None
) -> Page[InstanceEvent]:
    """The instance's event log (transitions, entity changes, approvals, alerts), oldest first."""
    async with engine.connect() as conn:
        if await instances.get_handle_info(conn, instance_id) is None:
            raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
        return await instances.events_page(conn, instance_id, limit=limit, offset=offset, cursor=cursor)


async def _update(
    engine: EngineDep,
    gateway: GatewayDep,
    instance_id: uuid.UUID,
    send: Callable[[str], Awaitable[InstanceView]],
) -> InstanceView:
    """Send to the derived workflow id; only when no such workflow answers, ask the database why."""
    try:
        return await send(process_workflow_id(instance_id))
    except WorkflowNotFound:
        pass
    async with engine.connect() as conn:
        info = await instances.get_handle_info(conn, instance_id)
    if info is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    if info["workflow_status"] == "active" and info["workflow_id"] != process_workflow_id(instance_id):
        try:  # an instance started under the earlier id scheme
            return await send(info["workflow_id"])
        except WorkflowNotFound:
            pass
    raise ApiError(
        409,
        "instance_finished",
        f"instance is {info['workflow_status']} (state {info['current_state_id']} "
        f"'{info['current_state_name']}'); it takes no more transitions",
    )


@router.put("/{instance_id}/transition", response_model=InstanceView)
async def transition_instance(
    instance_id: uuid.UUID, body: TransitionCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView:
    request = TransitionRequest(
        to_state_id=body.to_state_id,
        comment=body.comment,
        fields=body.fields,
        actor=principal.name,
        actor_role=principal.role,
    )
    return await _update(
        engine,
        gateway,
        instance_id,
        lambda workflow_id: gateway.update(workflow_id, ProcessInstanceWorkflow.transition, request),
    )


@router.post("/{instance_id}/cancel", response_model=InstanceView)
async def cancel_instance(
    instance_id: uuid.UUID, body: CancelCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView:
    """End an active instance where it stands: it records an ``instance_cancelled`` event, its
    workflow completes, and it takes no transitions afterwards (409). A finished instance is a 409."""
    request = CancelRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _update(
        engine,
        gateway,
        instance_id,
        lambda workflow_id: gateway.update(workflow_id, ProcessInstanceWorkflow.cancel, request),
    )


@router.post("/{instance_id}/deadline-alert/acknowledge", response_model=InstanceView)
async def acknowledge_deadline(
    instance_id: uuid.UUID, body: AcknowledgeCreate, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> InstanceView:
    """Take note of the open deadline alert of the instance's current state (the template's owner role,
    or an admin); it leaves the inbox. 409 when no alert is open."""
    request = AcknowledgeRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _update(
        engine,
        gateway,
        instance_id,
        lambda workflow_id: gateway.update(workflow_id, ProcessInstanceWorkflow.acknowledge, request),
    )


@router.post("/{instance_id}/approval", response_model=InstanceView)
async def decide_approval(
    instance_id: uuid.UUID, body: DecisionCreate, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> InstanceView:
    """Approve or reject the pending approval of the instance's current state: the gate's roles decide,
    and once it has escalated (its time-out passed) its escalation targets too (403 for anyone else)."""
    request = DecisionRequest(
        decision=body.decision, comment=body.comment, actor=principal.name, actor_role=principal.role
    )
    return await _update(
        engine,
        gateway,
        instance_id,
        lambda workflow_id: gateway.update(workflow_id, ProcessInstanceWorkflow.decide, request),
    )
