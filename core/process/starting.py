"""How a process instance starts, the same from the API (POST /workflow-instance) and from a step
workflow's ``instance.start`` tool: the template looked up and checked, the root entity found, and
the workflow's input, search attributes and summary built. The caller sends the start (the API
through its gateway, the tool's activity through the worker's client) to ``workflow_id`` with the
update ``WAIT_READY`` (core/process/ids.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.common import SearchAttributePair

from core.entities import store as entities
from core.experiments import store as experiments
from core.platform import search_attributes as sa
from core.platform.settings import Settings
from core.process import templates
from core.process.contracts import InstanceCreate, ProcessStartInput, VariantArm
from core.process.dag import start_state
from core.process.ids import process_workflow_id


class StartRefused(Exception):
    """The request names no usable template or root entity; ``code`` is the error catalogue's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PreparedStart:
    data: ProcessStartInput
    workflow_id: str
    search_attributes: list[SearchAttributePair[Any]]
    summary: str


async def prepare_start(
    conn: AsyncConnection, request: InstanceCreate, *, instance_id: str, actor: str, settings: Settings
) -> PreparedStart:
    """Everything a start needs, or ``StartRefused`` saying what exists instead."""
    # A running experiment routes a start that names no version, by the root entity (a customer keeps
    # its variant), else by the instance.
    arm: VariantArm | None = None
    wanted = request.template_version
    if wanted is None:
        experiment = await experiments.running_for(conn, request.template_code)
        if experiment is not None:
            chosen = experiments.route(experiment, str(request.root_entity_id or instance_id))
            arm, wanted = VariantArm(experiment_id=str(experiment.id), name=chosen.name), chosen.version
    template = await templates.get_by_code(conn, request.template_code, wanted)
    if template is None:
        known = ", ".join(await templates.active_codes(conn))
        version = f" version {request.template_version}" if request.template_version else ""
        raise StartRefused(
            "unknown_template", f"no template '{request.template_code}'{version}; available codes: {known}"
        )
    if not template.active_workflow_flag:
        raise StartRefused("inactive_template", f"template '{template.code}' is deactivated")
    root = await entities.find_live(conn, request.root_entity_id) if request.root_entity_id is not None else None
    if request.root_entity_id is not None and root is None:
        raise StartRefused("unknown_entity", f"root_entity_id {request.root_entity_id} is not an existing entity")

    data = ProcessStartInput(
        instance_id=instance_id,
        template=templates.snapshot(template),
        root_entity_id=str(request.root_entity_id) if request.root_entity_id else None,
        root_entity_type=root["entity_type"] if root else None,
        root_entity_name=root["name"] if root else None,
        entity=request.entity,
        actor=actor,
        started_ts=datetime.now(UTC),
        search_attributes=settings.search_attributes,
        names_in_temporal=settings.names_in_temporal,
        variant=arm,
    )
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.TEMPLATE_CODE, template.code),
        SearchAttributePair(sa.TEMPLATE_VERSION, template.version),
        SearchAttributePair(sa.INDUSTRY_SECTOR, template.industry_sector),
        SearchAttributePair(sa.CURRENT_STATE, start_state(template.workflow_graph).name),
        SearchAttributePair(sa.INSTANCE_STATUS, "active"),
    ]
    if request.root_entity_id:
        attributes.append(SearchAttributePair(sa.ROOT_ENTITY_ID, str(request.root_entity_id)))
    who = root["name"] if root else (request.entity.name if request.entity else "new entity")
    return PreparedStart(
        data=data,
        workflow_id=process_workflow_id(instance_id),
        search_attributes=attributes,
        summary=f"{template.name} v{template.version}" + (f" for {who}" if settings.names_in_temporal else ""),
    )
