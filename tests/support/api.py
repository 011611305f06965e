"""The API as tests drive it: keys per role, an ASGI client over the real app, settings pointing at the
session's servers, and a bounded wait for eventually-consistent reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from api.main import create_app
from core.platform.settings import Settings

TOKENS = {
    "admin": "test-admin-token-0000000001",
    "operator": "test-operator-token-00000002",
    "approver": "test-approver-token-00000003",
    "viewer": "test-viewer-token-0000000004",
}
# People of the directory tests (approvals by name, work shared among a pool): name -> (token, API role).
PEOPLE = {
    "alice": ("test-alice-token-000000000005", "operator"),
    "bob": ("test-bob-token-00000000000006", "approver"),
    "carol": ("test-carol-token-000000000007", "approver"),
    "dave": ("test-dave-token-0000000000008", "viewer"),
}
API_KEYS = ",".join(
    [f"{token}:{role}:{role}-user" for role, token in TOKENS.items()]
    + [f"{token}:{role}:{name}" for name, (token, role) in PEOPLE.items()]
)


def as_person(name: str) -> dict[str, str]:
    """Headers of a request made by one of PEOPLE (use with ``role=None``)."""
    return {"Authorization": f"Bearer {PEOPLE[name][0]}"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


# Set by the session fixtures below; make_settings points every Trellis component of the session at them.
SERVICE_SETTINGS: dict[str, Any] = {}


def make_settings(postgres_url: str, temporal_address: str, task_queue: str, **extra: Any) -> Settings:
    return Settings(
        database_url=postgres_url,
        temporal_address=temporal_address,
        task_queue=task_queue,
        api_keys=API_KEYS,
        # The suite drives one key hard; the limits have tests of their own (tests/api/test_rate_limits.py).
        **{
            "max_body_bytes": 64 * 1024,
            "rate_limit": "1000000/minute",
            "rate_limit_session_starts": "100000/minute",
            **SERVICE_SETTINGS,
            **extra,
        },
    )


@dataclass
class Api:
    client: httpx.AsyncClient

    async def request(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = {**(auth(role) if role else {}), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def start(self, template_code: str, name: str = "Jane Doe", **body: Any) -> dict[str, Any]:
        response = await self.request(
            "POST",
            "/api/v1/workflow-instance",
            role="operator",
            json={"template_code": template_code, "entity": {"name": name, "fields": {"email": "jane@example.com"}}}
            | body,
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def transition(self, instance_id: str, to_state_id: int, **body: Any) -> httpx.Response:
        return await self.request(
            "PUT",
            f"/api/v1/workflow-instance/{instance_id}/transition",
            role="operator",
            json={"to_state_id": to_state_id, **body},
        )

    async def decide(self, instance_id: str, decision: str, role: str = "approver", **body: Any) -> httpx.Response:
        return await self.request(
            "POST",
            f"/api/v1/workflow-instance/{instance_id}/approval",
            role=role,
            json={"decision": decision, **body},
        )

    async def get(self, instance_id: str) -> dict[str, Any]:
        response = await self.request("GET", f"/api/v1/workflow-instance/{instance_id}", role="viewer")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def open_api(settings: Settings) -> tuple[Any, httpx.AsyncClient]:
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trellis.test")
    return lifespan, client


async def eventually(check: Any, *, attempts: int = 100, delay: float = 0.1) -> Any:
    """Poll an async check until it returns a truthy value (bounded; for eventually-consistent reads)."""
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(delay)
    raise AssertionError("condition not met in time")
