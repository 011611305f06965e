"""Work definitions (seed 001: workflow_definitions) under /api/v1/orchestrator/definitions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from api.deps import Admin, EngineDep, Reader
from api.errors import ApiError
from core.work import store
from core.work.contracts import DefinitionCreate, DefinitionPublic

router = APIRouter(prefix="/api/v1/orchestrator/definitions", tags=["work queue"])


def _found(definition: DefinitionPublic | None, definition_id: uuid.UUID) -> DefinitionPublic:
    if definition is None:
        raise ApiError(404, "not_found", f"no work definition {definition_id}")
    return definition


@router.get("", response_model=list[DefinitionPublic])
async def list_definitions(
    engine: EngineDep, _: Reader, demo: bool | None = Query(default=None), active: bool | None = Query(default=None)
) -> list[DefinitionPublic]:
    async with engine.connect() as conn:
        return await store.list_definitions(conn, demo=demo, active=active)


@router.post("", response_model=DefinitionPublic, status_code=201)
async def create_definition(body: DefinitionCreate, engine: EngineDep, _: Admin) -> DefinitionPublic:
    async with engine.begin() as conn:
        created = await store.create_definition(conn, body)
    if created is None:
        raise ApiError(409, "definition_exists", f"a work definition named '{body.name}' exists; PUT to change it")
    return created


@router.get("/{definition_id}", response_model=DefinitionPublic)
async def get_definition(definition_id: uuid.UUID, engine: EngineDep, _: Reader) -> DefinitionPublic:
    """One kind of work. After its DELETE (a soft delete) it is still returned, deactivated."""
    async with engine.connect() as conn:
        return _found(await store.get_definition(conn, definition_id), definition_id)


@router.put("/{definition_id}", response_model=DefinitionPublic)
async def replace_definition(
    definition_id: uuid.UUID, body: DefinitionCreate, engine: EngineDep, _: Admin
) -> DefinitionPublic:
    """Replace a definition; items already open keep their kind and assignee."""
    async with engine.begin() as conn:
        named = await store.definition_named(conn, body.name)
        if named is not None and named != definition_id:
            raise ApiError(409, "definition_exists", f"another work definition is named '{body.name}'")
        return _found(await store.replace_definition(conn, definition_id, body), definition_id)


@router.delete("/{definition_id}", response_model=DefinitionPublic)
async def deactivate_definition(definition_id: uuid.UUID, engine: EngineDep, _: Admin) -> DefinitionPublic:
    """Soft delete: the definition is deactivated (the interpreter no longer creates its items) and stays
    readable, since items refer to it."""
    async with engine.begin() as conn:
        return _found(await store.deactivate_definition(conn, definition_id), definition_id)
