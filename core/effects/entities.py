"""Entity effects (create, update, run a registered script), each written once for rules and steps.

Every body runs inside the caller's transaction (``ledger.once_in_transaction``), so the change, the
entity events it emits and the ledger's record commit together.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.effects.failures import EffectFailed
from core.effects.scripts import SCRIPTS, ScriptError
from core.entities import store as entities
from core.entities.contracts import EntityLimits


def _gone(entity_id: uuid.UUID) -> EffectFailed:
    return EffectFailed(f"entity {entity_id} does not exist or is deleted", "permanent")


async def live_entity(conn: AsyncConnection, entity_id: uuid.UUID) -> dict[str, Any]:
    """The entity's snapshot; a missing or soft-deleted entity is a permanent failure."""
    found = await entities.find_live(conn, entity_id)
    if found is None:
        raise _gone(entity_id)
    return found


async def create_entity(
    conn: AsyncConnection,
    *,
    entity_id: uuid.UUID,
    entity_type: str,
    name: str,
    status: str | None,
    fields: dict[str, Any],
    actor: str,
    limits: EntityLimits,
    parent: tuple[str, uuid.UUID] | None = None,
    causation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Create the entity (its id derived from the caller's key, so a repeat finds it), linked under
    ``parent`` when given."""
    return await entities.create(
        conn,
        entity_id=entity_id,
        entity_type=entity_type,
        name=name,
        status=status,
        fields=fields,
        ts=datetime.now(UTC),
        actor=actor,
        causation=causation,
        parent=parent,
        limits=limits,
    )


async def update_entity(
    conn: AsyncConnection,
    entity_id: uuid.UUID,
    *,
    actor: str,
    limits: EntityLimits,
    name: str | None = None,
    status: str | None = None,
    set_fields: dict[str, Any] | None = None,
    unset_fields: list[str] | None = None,
    causation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Change the entity under its row lock; its snapshot after the change (unchanged when nothing
    differed). A missing or soft-deleted entity is a permanent failure: nothing is applied."""
    changed = await entities.change(
        conn,
        entity_id,
        ts=datetime.now(UTC),
        actor=actor,
        name=name,
        status=status,
        set_fields=set_fields or None,
        unset_fields=unset_fields or None,
        causation=causation,
        limits=limits,
    )
    if changed is None:
        raise _gone(entity_id)
    return changed[1]


async def run_script(
    conn: AsyncConnection,
    entity_id: uuid.UUID,
    script_id: str,
    params: dict[str, Any],
    *,
    actor: str,
    limits: EntityLimits,
    timeout_seconds: float | None = None,
    causation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run a registered script on the entity and set the fields it returns.

    The entity is read under its row lock, held until the caller's transaction commits: a change made
    meanwhile by anyone else waits, so the script never computes from a snapshot that is overwritten
    before its result lands. A soft-deleted entity is refused and nothing is applied. The script runs in
    a thread (it may be slow; the worker's event loop is not held) within ``timeout_seconds``."""
    script = SCRIPTS.get(script_id)
    if script is None:
        raise EffectFailed(f"script '{script_id}' is not registered", "permanent")
    entity = await entities.load(conn, entity_id, lock=True)
    if entity is None or entity["deleted"]:
        raise _gone(entity_id)
    try:
        result = await asyncio.wait_for(asyncio.to_thread(script, entity, dict(params)), timeout=timeout_seconds)
    except TimeoutError as exc:
        raise EffectFailed(f"'{script_id}' exceeded its {timeout_seconds}s time limit", "permanent") from exc
    except ScriptError as exc:
        raise EffectFailed(f"'{script_id}' failed: {exc}", "permanent") from exc
    await update_entity(conn, entity_id, actor=actor, limits=limits, set_fields=result, causation=causation)
    return result
