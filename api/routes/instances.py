"""Process instances: start, read, list, transition, approve/reject."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sqlalchemy import select
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.deps import Approver, EngineDep, Operator, Reader, SettingsDep, TemporalDep
from api.errors import ApiError
from api.gateway import execute_update, start_workflow
from api.pagination import Limit, Offset
from core import instances, templates
from core import search_attributes as sa
from core.dag import start_state
from core.db import Entity
from core.ids import derived_id, process_workflow_id
from core.models import (
    DecisionCreate,
    DecisionRequest,
    InstanceCreate,
    InstanceView,
    Page,
    ProcessStartInput,
    TransitionCreate,
    TransitionRequest,
)
from workflows.process_instance import ProcessInstanceWorkflow

router = APIRouter(prefix="/api/v1/workflow-instance", tags=["instances"])


@router.post("", response_model=InstanceView, status_code=201)
async def start_instance(
    body: InstanceCreate,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: Operator,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Retrying with the same key returns the same instance"),
    ] = None,
) -> InstanceView:
    async with engine.connect() as conn:
        template = await templates.get_by_code(conn, body.template_code, body.template_version)
        if template is None:
            known = ", ".join(
                sorted(
                    {
                        t.code
                        for t in (
                            await templates.list_templates(
                                conn,
                                code=None,
                                industry_sector=None,
                                active=True,
                                all_versions=False,
                                limit=200,
                                offset=0,
                            )
                        )[0]
                    }
                )
            )
            version = f" version {body.template_version}" if body.template_version else ""
            raise ApiError(
                422, "unknown_template", f"no template '{body.template_code}'{version}; available codes: {known}"
            )
        if not template.active_workflow_flag:
            raise ApiError(422, "inactive_template", f"template '{template.code}' is deactivated")
        root_type: str | None = None
        root_name: str | None = None
        if body.root_entity_id is not None:
            found = (
                await conn.execute(
                    select(Entity.entity_type, Entity.name).where(
                        Entity.id == body.root_entity_id, Entity.deleted_ts.is_(None)
                    )
                )
            ).first()
            if found is None:
                raise ApiError(422, "unknown_entity", f"root_entity_id {body.root_entity_id} is not an existing entity")
            root_type, root_name = found.entity_type, found.name

    instance_id = (
        str(derived_id("instance", principal.name, template.code, idempotency_key))
        if idempotency_key
        else str(uuid.uuid4())
    )
    workflow_id = process_workflow_id(template.code, instance_id)
    data = ProcessStartInput(
        instance_id=instance_id,
        template=templates.snapshot(template),
        root_entity_id=str(body.root_entity_id) if body.root_entity_id else None,
        root_entity_type=root_type,
        root_entity_name=root_name,
        entity=body.entity,
        actor=principal.name,
        started_ts=datetime.now(UTC),
        search_attributes=settings.search_attributes,
    )
    start = start_state(template.workflow_graph)
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.TEMPLATE_CODE, template.code),
        SearchAttributePair(sa.TEMPLATE_VERSION, template.version),
        SearchAttributePair(sa.INDUSTRY_SECTOR, template.industry_sector),
        SearchAttributePair(sa.CURRENT_STATE, start.name),
        SearchAttributePair(sa.INSTANCE_STATUS, "active"),
    ]
    if body.root_entity_id:
        attributes.append(SearchAttributePair(sa.ROOT_ENTITY_ID, str(body.root_entity_id)))
    who = root_name or (body.entity.name if body.entity else "new entity")
    try:
        handle = await start_workflow(
            temporal,
            settings,
            ProcessInstanceWorkflow.run,
            data,
            workflow_id=workflow_id,
            search_attributes=attributes,
            summary=f"{template.name} v{template.version} for {who}",
        )
    except WorkflowAlreadyStartedError:
        # A retry (same Idempotency-Key) of an instance that has already finished.
        return instances.view_from_row(await _load(engine, uuid.UUID(instance_id)))
    return await execute_update(handle, ProcessInstanceWorkflow.wait_ready)


@router.get("", response_model=Page[InstanceView])
async def list_instances(
    engine: EngineDep,
    _: Reader,
    template_code: str | None = None,
    state_id: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    status: Annotated[str | None, Query(pattern="^(active|completed)$")] = None,
    root_entity_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[InstanceView]:
    """Lists from the database projection (written by the workflow's activities as it moves)."""
    async with engine.connect() as conn:
        items, total = await instances.list_rows(
            conn,
            template_code=template_code,
            state_id=state_id,
            status=status,
            root_entity_id=root_entity_id,
            limit=limit,
            offset=offset,
        )
    return Page(items=items, total=total, limit=limit, offset=offset)


async def _load(engine: EngineDep, instance_id: uuid.UUID, *, full: bool = True) -> dict[str, Any]:
    async with engine.connect() as conn:
        if full:
            row = await instances.get_row(conn, instance_id)
        else:
            row = await instances.get_handle_info(conn, instance_id)
    if row is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    return dict(row)


@router.get("/{instance_id}", response_model=InstanceView)
async def get_instance(instance_id: uuid.UUID, engine: EngineDep, temporal: TemporalDep, _: Reader) -> InstanceView:
    """From the running workflow (authoritative, includes in-flight state), else from the database."""
    info = await _load(engine, instance_id, full=False)
    if info["workflow_status"] == "active":
        try:
            return await temporal.get_workflow_handle(info["workflow_id"]).query(ProcessInstanceWorkflow.view)
        except (RPCError, WorkflowQueryFailedError):
            pass  # finished meanwhile, or no worker to answer: the projection is the next best answer
    return instances.view_from_row(await _load(engine, instance_id))


def _handle(temporal: Client, row: dict[str, Any]) -> Any:
    if row["workflow_status"] != "active":
        raise ApiError(
            409,
            "instance_finished",
            f"instance is {row['workflow_status']} (state {row['current_state_id']} "
            f"'{row['current_state_name']}'); it takes no more transitions",
        )
    return temporal.get_workflow_handle(row["workflow_id"])


@router.put("/{instance_id}/transition", response_model=InstanceView)
async def transition_instance(
    instance_id: uuid.UUID, body: TransitionCreate, engine: EngineDep, temporal: TemporalDep, principal: Operator
) -> InstanceView:
    handle = _handle(temporal, await _load(engine, instance_id, full=False))
    request = TransitionRequest(
        to_state_id=body.to_state_id,
        comment=body.comment,
        fields=body.fields,
        actor=principal.name,
        actor_role=principal.role,
    )
    return await execute_update(handle, ProcessInstanceWorkflow.transition, request)


@router.post("/{instance_id}/approval", response_model=InstanceView)
async def decide_approval(
    instance_id: uuid.UUID, body: DecisionCreate, engine: EngineDep, temporal: TemporalDep, principal: Approver
) -> InstanceView:
    """Approve or reject the pending approval of the instance's current state."""
    handle = _handle(temporal, await _load(engine, instance_id, full=False))
    request = DecisionRequest(
        decision=body.decision, comment=body.comment, actor=principal.name, actor_role=principal.role
    )
    return await execute_update(handle, ProcessInstanceWorkflow.decide, request)
