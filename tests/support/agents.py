"""Agent sessions as tests drive them through the API."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.api import Api, eventually

FINAL = ("completed", "failed", "cancelled", "budget_exceeded")


def case() -> str:
    return uuid.uuid4().hex[:10]


async def start(api: Api, case_id: str, **body: Any) -> dict[str, Any]:
    goal = body.pop("goal", "Create comprehensive project plan for HVAC installation at 123 Main St")
    response = await api.request(
        "POST", "/api/v1/orchestrator/session", role="operator", json={"goal": f"[case:{case_id}] {goal}", **body}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def session(api: Api, session_id: str) -> dict[str, Any]:
    response = await api.request("GET", f"/api/v1/orchestrator/session/{session_id}", role="viewer")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def until(api: Api, session_id: str, statuses: tuple[str, ...] = FINAL) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        current = await session(api, session_id)
        return current if current["session_status"] in statuses else None

    return await eventually(reached, attempts=400)  # type: ignore[no-any-return]


async def logs(api: Api, session_id: str) -> list[dict[str, Any]]:
    response = await api.request("GET", f"/api/v1/orchestrator/session/{session_id}/logs", role="viewer")
    assert response.status_code == 200
    return response.json()["items"]  # type: ignore[no-any-return]
