"""Automation rules (seed: /api/v1/workflow-automation) and their executions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.commands import automation as commands
from api.deps import Admin, EngineDep, GatewayDep, Reader
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.automation import store
from core.automation.rules import RuleCreate, RuleExecutionPublic, RulePublic, compile_templates
from core.automation.templating import TemplateRenderError
from core.platform.contracts import Page
from workflows.automation.schedules import delete_schedule, sync_schedule

router = APIRouter(prefix="/api/v1/workflow-automation", tags=["automation"])
COMPILE_SECONDS = 2.0


async def _compiled(body: RuleCreate) -> None:
    """Compile the rule's templates in a thread with a time limit: the save-time checks make compiling
    cheap, and this keeps it so even for a template they let through."""
    try:
        await asyncio.wait_for(asyncio.to_thread(compile_templates, body), timeout=COMPILE_SECONDS)
    except TimeoutError as exc:
        raise ApiError(
            422, "validation_error", f"the rule's templates take longer than {COMPILE_SECONDS}s to compile"
        ) from exc
    except TemplateRenderError as exc:
        raise ApiError(422, "validation_error", str(exc)) from exc


async def _load(engine: EngineDep, rule_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        rule = await store.get_rule(conn, rule_id)
    if rule is None:
        raise ApiError(404, "not_found", f"no automation rule {rule_id}")
    return rule


async def _sync(gateway: GatewayDep, rule: Any) -> None:
    try:
        await gateway.call(lambda client, queue: sync_schedule(client, queue, rule), what="rule schedule")
    except ApiError as exc:
        raise ApiError(
            503,
            "schedule_not_synced",
            f"the rule was saved but its schedule could not be updated ({exc.detail}); the worker reconciles "
            "schedules when it starts, or save the rule again",
        ) from exc


@router.get("", response_model=Page[RulePublic])
async def list_rules(
    engine: EngineDep,
    principal: Reader,
    trigger_entity_type: str | None = None,
    trigger_action_type: str | None = None,
    active: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[RulePublic]:
    page, _ = await commands.rules(
        principal,
        engine,
        trigger_entity_type=trigger_entity_type,
        trigger_action_type=trigger_action_type,
        active=active,
        limit=limit,
        offset=offset,
        cursor=cursor,
        with_activity=False,
    )
    return page


@router.post("", response_model=RulePublic, status_code=201)
async def create_rule(body: RuleCreate, engine: EngineDep, gateway: GatewayDep, principal: Admin) -> RulePublic:
    await _compiled(body)
    async with engine.begin() as conn:
        stored = await store.create_rule(conn, body, created_by=principal.name)
    if stored.trigger_action_type == "scheduled":
        await _sync(gateway, stored)
    return commands.public_rule(stored, principal)


@router.get("/{rule_id}", response_model=RulePublic)
async def get_rule(rule_id: uuid.UUID, engine: EngineDep, principal: Reader) -> RulePublic:
    """One rule. After its DELETE (a soft delete) it is still returned, with ``active_flag`` false; after
    ``DELETE …?purge=true`` it is 404."""
    return commands.public_rule(await _load(engine, rule_id), principal)


@router.put("/{rule_id}", response_model=RulePublic)
async def replace_rule(
    rule_id: uuid.UUID, body: RuleCreate, engine: EngineDep, gateway: GatewayDep, principal: Admin
) -> RulePublic:
    """Replace the rule's definition; its counters, secret and history stay."""
    await _compiled(body)
    before = await _load(engine, rule_id)
    async with engine.begin() as conn:
        stored = await store.replace_rule(conn, rule_id, body)
    assert stored is not None
    if "scheduled" in (before.trigger_action_type, stored.trigger_action_type):
        await _sync(gateway, stored)
    return commands.public_rule(stored, principal)


@router.delete("/{rule_id}", response_model=RulePublic | None)
async def deactivate_rule(
    rule_id: uuid.UUID,
    engine: EngineDep,
    gateway: GatewayDep,
    principal: Admin,
    purge: Annotated[bool, Query(description="Delete the rule and its schedule instead of deactivating")] = False,
) -> RulePublic | None:
    """Soft delete (the seed's DELETE): the rule is deactivated and a scheduled rule's schedule paused;
    it stays readable with ``active_flag`` false, with its executions, and PUT can reactivate it.
    ``purge=true`` deletes the rule and its schedule for good."""
    await _load(engine, rule_id)
    if purge:
        async with engine.begin() as conn:
            await store.purge_rule(conn, rule_id)
        await gateway.call(lambda client, _: delete_schedule(client, str(rule_id)), what="rule schedule")
        return None
    async with engine.begin() as conn:
        stored = await store.deactivate_rule(conn, rule_id)
    assert stored is not None
    if stored.trigger_action_type == "scheduled":
        await _sync(gateway, stored)
    return commands.public_rule(stored, principal)


@router.get("/{rule_id}/executions", response_model=Page[RuleExecutionPublic])
async def list_executions(
    rule_id: uuid.UUID,
    engine: EngineDep,
    principal: Reader,
    status: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[RuleExecutionPublic]:
    """The rule's executions, newest first. A rule that was deactivated (DELETE) keeps them; one that was
    purged (``DELETE …?purge=true``) or never existed is 404."""
    _, page = await commands.rule_executions(
        rule_id, principal, engine, status=status, limit=limit, offset=offset, cursor=cursor
    )
    return page
