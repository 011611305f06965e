"""Helpers for step-workflow tests: definitions and executions through the API."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.api import Api, eventually

TERMINAL = ("completed", "failed", "cancelled", "compensated")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def workflow(name: str, steps: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    return {"name": name, "description": "a test workflow", "steps": steps, "config": config}


async def create(api: Api, definition: dict[str, Any]) -> dict[str, Any]:
    response = await api.request("POST", "/api/v1/workflows", json=definition)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def execute(
    api: Api, name: str, input: dict[str, Any] | None = None, key: str | None = None, **body: Any
) -> dict[str, Any]:
    response = await api.request(
        "POST",
        f"/api/v1/workflows/{name}/execute",
        role="operator",
        json={"input": input or {}, **body},
        headers={"Idempotency-Key": key} if key else {},
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def execution(api: Api, execution_id: str) -> dict[str, Any]:
    response = await api.request("GET", f"/api/v1/workflow-executions/{execution_id}", role="viewer")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def finished(api: Api, execution_id: str, attempts: int = 600) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        found = await execution(api, execution_id)
        return found if found["status"] in TERMINAL else None

    return await eventually(done, attempts=attempts)  # type: ignore[no-any-return]


async def run(
    api: Api, steps: list[dict[str, Any]], input: dict[str, Any] | None = None, **config: Any
) -> dict[str, Any]:
    """Create a one-off workflow, execute it, wait for its end."""
    name = unique_name("wf")
    await create(api, workflow(name, steps, **config))
    started = await execute(api, name, input)
    return await finished(api, started["id"])


def steps_by_name(done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in done["steps"]}
