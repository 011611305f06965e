"""Helpers for automation tests: rules through the API, and waiting for their executions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import EntityEvent
from tests.support.api import Api, eventually


def unique_type(prefix: str) -> str:
    """A fresh entity type per test, so rules of one test never see another test's events."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def create_rule(api: Api, entity_type: str, actions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    body = {
        "workflow_name": fields.pop("workflow_name", f"rule on {entity_type}"),
        "trigger_entity_type": entity_type,
        "trigger_action_type": fields.pop("trigger_action_type", "create"),
        "action_entity_type": fields.pop("action_entity_type", entity_type),
        "actions": actions,
        **fields,
    }
    response = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_entity(api: Api, entity_type: str, name: str, **body: Any) -> dict[str, Any]:
    response = await api.request(
        "POST", f"/api/v1/entities/{entity_type}", role="operator", json={"name": name, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def patch_entity(api: Api, entity_type: str, entity_id: str, **body: Any) -> dict[str, Any]:
    response = await api.request("PATCH", f"/api/v1/entities/{entity_type}/{entity_id}", role="operator", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def executions(api: Api, rule_id: str) -> list[dict[str, Any]]:
    response = await api.request("GET", f"/api/v1/workflow-automation/{rule_id}/executions?limit=200", role="viewer")
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def finished_executions(api: Api, rule_id: str, count: int, attempts: int = 300) -> list[dict[str, Any]]:
    """Wait until ``count`` executions of the rule have finished (completed, failed or skipped)."""

    async def done() -> list[dict[str, Any]] | None:
        rows = [e for e in await executions(api, rule_id) if e["status"] != "running"]
        return rows if len(rows) >= count else None

    return await eventually(done, attempts=attempts)  # type: ignore[no-any-return]


async def get_entity(api: Api, entity_type: str, entity_id: str) -> dict[str, Any]:
    response = await api.request("GET", f"/api/v1/entities/{entity_type}/{entity_id}", role="viewer")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def outbox(engine: AsyncEngine, entity_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EntityEvent.__table__)
            .where(EntityEvent.entity_id == uuid.UUID(entity_id))
            .order_by(EntityEvent.created_ts, EntityEvent.event_kind, EntityEvent.field_name)
        )
        return [dict(r) for r in rows.mappings()]
