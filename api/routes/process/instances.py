"""Process instances: start, read, list, transition, approve/reject.

The hot path reads no database row: an instance's workflow id derives from its id, a start is one
update-with-start round trip, and a transition is one update. The database is read only to explain
a failure (404 against 409) and to answer reads of finished instances.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.commands import forecasts
from api.commands import instances as commands
from api.commands.policies import ApprovalTicket
from api.deps import EngineDep, GatewayDep, IdempotencyKey, Operator, Reader, SettingsDep
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.platform.contracts import Page
from core.platform.pauses import PauseCreate, ResumeCreate
from core.process import instances
from core.process.contracts import (
    AcknowledgeCreate,
    BulkPauseCreate,
    BulkPauseResult,
    CancelCreate,
    DecisionCreate,
    InstanceCreate,
    InstanceEvent,
    InstanceView,
    TransitionCreate,
)
from core.process.forecast import Forecast

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
    return await commands.start(body, principal, engine, gateway, settings, idempotency_key)


@router.post("/bulk/pause-resume", response_model=BulkPauseResult)
async def pause_or_resume_many(
    body: BulkPauseCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> BulkPauseResult:
    """Pause (or resume) every active instance of a template, or of some of its states, at most 500 per
    call (``more`` says to call again); instances that refuse are listed with their reasons."""
    return await commands.pause_many(body, principal, engine, gateway)


@router.get("", response_model=Page[InstanceView])
async def list_instances(
    engine: EngineDep,
    _: Reader,
    template_code: str | None = None,
    state_id: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    status: Annotated[str | None, Query(pattern="^(active|completed|cancelled)$")] = None,
    root_entity_id: uuid.UUID | None = None,
    variant: Annotated[
        str | None, Query(max_length=40, description="Instances routed to this experiment variant")
    ] = None,
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
            variant=variant,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


@router.get("/{instance_id}", response_model=InstanceView)
async def get_instance(
    instance_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> InstanceView:
    """From the running workflow (authoritative, includes in-flight state), else from the database."""
    return await commands.get(instance_id, principal, engine, gateway)


@router.get("/{instance_id}/events", response_model=Page[InstanceEvent])
async def list_instance_events(
    instance_id: uuid.UUID, engine: EngineDep, _: Reader, limit: Limit = 100, offset: Offset = 0, cursor: Cursor = None
) -> Page[InstanceEvent]:
    """The instance's event log (transitions, entity changes, approvals, alerts), oldest first."""
    async with engine.connect() as conn:
        if await instances.get_handle_info(conn, instance_id) is None:
            raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
        return await instances.events_page(conn, instance_id, limit=limit, offset=offset, cursor=cursor)


@router.put(
    "/{instance_id}/transition",
    response_model=InstanceView,
    responses={
        202: {"model": ApprovalTicket, "description": "An approval policy sent the transition to people first"},
    },
)
async def transition_instance(
    instance_id: uuid.UUID, body: TransitionCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView | JSONResponse:
    """Move the instance to one of its allowed next states. An approval policy on the transition may deny
    it (403 ``policy_denied``, naming the policy) or send it to people first (202 with the approval,
    ``GET /api/v1/approvals/{id}``): the transition happens once, when the approval is granted."""
    moved = await commands.transition(instance_id, body, principal, engine, gateway)
    if isinstance(moved, ApprovalTicket):
        return JSONResponse(status_code=202, content=moved.model_dump(mode="json"))
    return moved


@router.post("/{instance_id}/cancel", response_model=InstanceView)
async def cancel_instance(
    instance_id: uuid.UUID, body: CancelCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView:
    """End an active instance where it stands: it records an ``instance_cancelled`` event, its
    workflow completes, and it takes no transitions afterwards (409). A finished instance is a 409."""
    return await commands.cancel(instance_id, body, principal, engine, gateway)


@router.post("/{instance_id}/deadline-alert/acknowledge", response_model=InstanceView)
async def acknowledge_deadline(
    instance_id: uuid.UUID, body: AcknowledgeCreate, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> InstanceView:
    """Take note of the open deadline alert of the instance's current state (the template's owner role,
    or an admin); it leaves the inbox. 409 when no alert is open."""
    return await commands.acknowledge_deadline(instance_id, body, principal, engine, gateway)


@router.get("/{instance_id}/forecast", response_model=Forecast)
async def instance_forecast(
    instance_id: uuid.UUID, engine: EngineDep, settings: SettingsDep, principal: Reader
) -> Forecast:
    """When the running instance will finish (remaining p50 and p90 seconds), its chance to end in a
    success state and, when its template has ``sla_days``, to finish by that deadline; conditioned on
    its template version, its state and the time already spent there (decision 0021). ``uncertain``
    with ``reasons`` where the recorded history is thin. 409 ``not_running`` once it has finished."""
    return await forecasts.instance_forecast(instance_id, principal, engine, settings)


@router.post("/{instance_id}/early-warning/acknowledge", status_code=204)
async def acknowledge_early_warning(instance_id: uuid.UUID, engine: EngineDep, principal: Reader) -> None:
    """Take note of the instance's early warning (its template's owner role, or an admin): it leaves the
    inbox. 404 when none is open."""
    await forecasts.acknowledge_warning(instance_id, principal, engine)


@router.post("/{instance_id}/approval", response_model=InstanceView)
async def decide_approval(
    instance_id: uuid.UUID, body: DecisionCreate, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> InstanceView:
    """Approve or reject the pending approval of the instance's current state: the gate's roles decide,
    and once it has escalated (its time-out passed) its escalation targets too (403 for anyone else)."""
    return await commands.decide_approval(instance_id, body, principal, engine, gateway)


@router.post("/{instance_id}/pause", response_model=InstanceView)
async def pause_instance(
    instance_id: uuid.UUID, body: PauseCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView:
    """Pause an active instance: until resumed it takes no transition or decision (409 ``paused``, naming
    who paused it and why). Its timers keep time; an approval time-out or deadline that falls due while it
    is paused acts when it is resumed."""
    return await commands.pause(instance_id, body, principal, engine, gateway)


@router.post("/{instance_id}/resume", response_model=InstanceView)
async def resume_instance(
    instance_id: uuid.UUID, body: ResumeCreate, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> InstanceView:
    return await commands.resume(instance_id, body, principal, engine, gateway)
