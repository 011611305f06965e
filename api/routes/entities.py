"""Business entities of any type: create, read, list, update, soft delete.

Every change commits its entity events (the outbox) in the same transaction, which is what triggers
automation rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import EngineDep, Operator, Reader, SettingsDep
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.entities import store as entities
from core.entities.contracts import EntityCreate, EntityPublic, EntityUpdate, limits_of
from core.platform.contracts import Page
from core.process import instances

router = APIRouter(prefix="/api/v1/entities", tags=["entities"])

EntityType = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="lower_snake_case type, e.g. project, quote, task",
    ),
]


def _public(entity: dict[str, Any]) -> EntityPublic:
    return EntityPublic.model_validate(entity)


async def _existing(conn: Any, entity_type: str, entity_id: uuid.UUID) -> dict[str, Any]:
    found = await entities.load(conn, entity_id)
    if found is None or found["entity_type"] != entity_type or found["deleted"]:
        raise ApiError(404, "not_found", f"no {entity_type} with id {entity_id}")
    return found


@router.post("/{entity_type}", response_model=EntityPublic, status_code=201)
async def create_entity(
    entity_type: EntityType, body: EntityCreate, engine: EngineDep, settings: SettingsDep, principal: Operator
) -> EntityPublic:
    async with engine.begin() as conn:
        parent = None
        if body.parent_id is not None:
            found = await entities.find_live(conn, body.parent_id)
            if found is None:
                raise ApiError(422, "unknown_entity", f"parent_id {body.parent_id} is not an existing entity")
            parent = (found["entity_type"], body.parent_id)
        created = await entities.create(
            conn,
            entity_id=uuid.uuid4(),
            entity_type=entity_type,
            name=body.name,
            status=body.status,
            fields=body.fields,
            ts=datetime.now(UTC),
            actor=principal.name,
            parent=parent,
            limits=limits_of(settings),
        )
    return _public(created)


@router.get("/{entity_type}", response_model=Page[EntityPublic])
async def list_entities(
    entity_type: EntityType,
    engine: EngineDep,
    _: Reader,
    status: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=300, description="Substring, case-insensitive")] = None,
    include_deleted: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[EntityPublic]:
    async with engine.connect() as conn:
        return await entities.entities_page(
            conn,
            entity_type,
            status=status,
            name=name,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )


@router.get("/{entity_type}/{entity_id}", response_model=EntityPublic)
async def get_entity(entity_type: EntityType, entity_id: uuid.UUID, engine: EngineDep, _: Reader) -> EntityPublic:
    async with engine.connect() as conn:
        return _public(await _existing(conn, entity_type, entity_id))


@router.patch("/{entity_type}/{entity_id}", response_model=EntityPublic)
async def update_entity(
    entity_type: EntityType,
    entity_id: uuid.UUID,
    body: EntityUpdate,
    engine: EngineDep,
    settings: SettingsDep,
    principal: Operator,
) -> EntityPublic:
    async with engine.begin() as conn:
        await _existing(conn, entity_type, entity_id)
        if body.status is not None and (managing := await instances.running_instance_managing(conn, entity_id)):
            raise ApiError(
                409,
                "managed_by_instance",
                f"the status of this {entity_type} is set by process instance {managing['id']} "
                f"({managing['template_code']}, now in state {managing['current_state_id']} "
                f"'{managing['current_state_name']}'), which is running: transition the instance instead",
                instance_id=str(managing["id"]),
            )
        try:
            changed = await entities.change(
                conn,
                entity_id,
                ts=datetime.now(UTC),
                actor=principal.name,
                name=body.name,
                status=body.status,
                set_fields=body.fields,
                unset_fields=body.unset_fields,
                expected_version=body.expected_version,
                limits=limits_of(settings),
            )
        except entities.VersionConflict as exc:
            raise ApiError(
                409,
                "version_conflict",
                f"the entity changed meanwhile (now version {exc.current_version}); re-read and retry",
                current_version=exc.current_version,
            ) from exc
        if changed is None:
            raise ApiError(404, "not_found", f"no {entity_type} with id {entity_id}")
    return _public(changed[1])


@router.delete("/{entity_type}/{entity_id}", response_model=EntityPublic)
async def delete_entity(
    entity_type: EntityType, entity_id: uuid.UUID, engine: EngineDep, principal: Operator
) -> EntityPublic:
    """Soft delete: the entity stays readable with ``include_deleted`` and emits a delete event."""
    async with engine.begin() as conn:
        await _existing(conn, entity_type, entity_id)
        deleted = await entities.soft_delete(conn, entity_id, ts=datetime.now(UTC), actor=principal.name)
    if deleted is None:
        raise ApiError(404, "not_found", f"no {entity_type} with id {entity_id}")
    return _public(deleted)
