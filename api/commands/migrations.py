"""Migration commands: preview a plan, start it (a batch workflow), read a migration and its items.
Admins only: a migration changes which rules many running instances follow."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import AlreadyFinished, Gateway
from core.platform.contracts import Page
from core.platform.ids import derived_id
from core.process import migrations
from core.process.ids import migration_workflow_id
from core.process.migration import (
    MigrationCreate,
    MigrationItemPublic,
    MigrationPlan,
    MigrationPreview,
    MigrationPublic,
    MigrationRunInput,
)
from core.process.migrations import PlanInvalid, VersionMissing
from core.process.tables import Migration
from workflows.process.migration import InstanceMigrationWorkflow


async def preview(plan: MigrationPlan, principal: Principal, engine: AsyncEngine) -> MigrationPreview:
    """Per instance: where it would go, what happens to its approval, deadline and entity, or why it is
    refused (unmapped state, a gate the target lacks, a target that cannot reach success, …); totals."""
    allow(principal, doing="migrate instances")
    async with engine.connect() as conn:
        try:
            return await migrations.preview(conn, plan)
        except VersionMissing as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        except PlanInvalid as exc:
            raise ApiError(422, "invalid_plan", str(exc)) from exc


async def start(
    body: MigrationCreate,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    idempotency_key: str | None = None,
) -> MigrationPublic:
    """Record the plan's items (the preview's, refused ones with their reasons) and start the batches.
    One migration of a template version runs at a time."""
    allow(principal, doing="migrate instances")
    migration_id = (
        derived_id("migration", principal.name, body.template_code, idempotency_key)
        if idempotency_key
        else uuid.uuid4()
    )
    async with engine.begin() as conn:
        existing = await migrations.get(conn, migration_id)
        if existing is None:
            running = await conn.execute(
                select(Migration.id).where(
                    Migration.template_code == body.template_code,
                    Migration.from_version == body.from_version,
                    Migration.status == "running",
                )
            )
            other = running.scalar()
            if other is not None:
                raise ApiError(
                    409,
                    "migration_running",
                    f"migration {other} of {body.template_code} v{body.from_version} is still running; "
                    "wait for it to finish (GET /api/v1/migrations/{id})",
                )
            try:
                found = await migrations.preview(conn, body)
            except VersionMissing as exc:
                raise ApiError(404, "not_found", str(exc)) from exc
            except PlanInvalid as exc:
                raise ApiError(422, "invalid_plan", str(exc)) from exc
            await migrations.create(conn, migration_id, body, found, principal.name)
    try:
        await gateway.start(
            InstanceMigrationWorkflow.run,
            MigrationRunInput(migration_id=str(migration_id), batch_size=body.batch_size, pause_ms=body.pause_ms),
            workflow_id=migration_workflow_id(migration_id),
            summary=f"migrate {body.template_code} v{body.from_version} → v{body.to_version}",
        )
    except AlreadyFinished:
        pass  # a retry of a migration that has finished already
    return await get(migration_id, principal, engine)


async def get(migration_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> MigrationPublic:
    allow(principal, doing="read migrations")
    async with engine.connect() as conn:
        found = await migrations.get(conn, migration_id)
    if found is None:
        raise ApiError(404, "not_found", f"no migration {migration_id}")
    return found


async def listing(
    principal: Principal, engine: AsyncEngine, template_code: str | None, limit: int, cursor: str | None
) -> Page[MigrationPublic]:
    allow(principal, doing="read migrations")
    async with engine.connect() as conn:
        return await migrations.listing(conn, template_code, limit, cursor)


async def items(
    migration_id: uuid.UUID,
    principal: Principal,
    engine: AsyncEngine,
    outcome: str | None,
    limit: int,
    cursor: str | None,
) -> Page[MigrationItemPublic]:
    await get(migration_id, principal, engine)
    async with engine.connect() as conn:
        return await migrations.items(conn, migration_id, outcome, limit, cursor)
