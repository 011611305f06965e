"""Migrations of running instances between template versions: preview a plan, start it, follow it.
The rules are core/process/migration.py's; docs/concepts/change-while-running.md describes them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.commands import migrations as commands
from api.deps import Admin, EngineDep, GatewayDep, IdempotencyKey
from api.pagination import Cursor, Limit
from core.platform.contracts import Page
from core.process.migration import (
    MigrationCreate,
    MigrationItemPublic,
    MigrationPlan,
    MigrationPreview,
    MigrationPublic,
)

router = APIRouter(prefix="/api/v1/migrations", tags=["migrations"])


@router.post("/preview", response_model=MigrationPreview)
async def preview_migration(body: MigrationPlan, engine: EngineDep, principal: Admin) -> MigrationPreview:
    """What the plan would do to each active instance it takes, changing nothing: its target state,
    what happens to its approval, deadline and entity, or why it is refused; totals by outcome."""
    return await commands.preview(body, principal, engine)


@router.post("", response_model=MigrationPublic, status_code=202)
async def start_migration(
    body: MigrationCreate,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Admin,
    idempotency_key: IdempotencyKey = None,
) -> MigrationPublic:
    """Start the plan: its instances are sent the ``migrate`` update in batches (``batch_size``, with
    ``pause_ms`` between batches) by a durable workflow; each is migrated once, or refused when it moved
    on since the preview. Roll back with a migration in the other direction."""
    return await commands.start(body, principal, engine, gateway, idempotency_key)


@router.get("", response_model=Page[MigrationPublic])
async def list_migrations(
    engine: EngineDep,
    principal: Admin,
    template_code: Annotated[str | None, Query(max_length=50)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MigrationPublic]:
    return await commands.listing(principal, engine, template_code, limit, cursor)


@router.get("/{migration_id:uuid}", response_model=MigrationPublic)
async def get_migration(migration_id: uuid.UUID, engine: EngineDep, principal: Admin) -> MigrationPublic:
    """The migration, its plan and its instances by outcome (pending, migrated, refused)."""
    return await commands.get(migration_id, principal, engine)


@router.get("/{migration_id:uuid}/items", response_model=Page[MigrationItemPublic])
async def list_migration_items(
    migration_id: uuid.UUID,
    engine: EngineDep,
    principal: Admin,
    outcome: Annotated[str | None, Query(pattern="^(pending|migrated|refused)$")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MigrationItemPublic]:
    return await commands.items(migration_id, principal, engine, outcome, limit, cursor)
