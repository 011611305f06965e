"""Work-queue helpers over the API: an entity with signal fields, the demo sequence, an item change."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.api import Api

Q = "/api/v1/orchestrator"


async def customer(api: Api, **fields: Any) -> str:
    entity_type = fields.pop("entity_type", "customer")
    response = await api.request(
        "POST",
        f"/api/v1/entities/{entity_type}",
        role="operator",
        json={"name": f"Obsidian Black {uuid.uuid4().hex[:6]}", "fields": fields},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def demo(api: Api, entity_id: str, assignee: str) -> list[dict[str, Any]]:
    response = await api.request(
        "POST", f"{Q}/demo/initialize", role="admin", json={"entity_id": entity_id, "assignee": assignee}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def act(api: Api, role: str, item_id: str, path: str, method: str = "POST", **body: Any) -> httpx.Response:
    return await api.request(method, f"{Q}/executions/{item_id}/{path}", role=role, json=body)
