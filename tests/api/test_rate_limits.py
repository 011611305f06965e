"""Per-key rate limits with 429 and Retry-After; separate budgets for session starts and LLM tokens; a
default token budget per session; agent output schemas without regular expressions or remote refs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.agents import case
from tests.support.api import Api, make_settings, open_api
from tests.support.servers import LlmServer


@pytest.fixture
async def limited(postgres_url: str, temporal_address: str, task_queue: str, worker: None) -> AsyncIterator[Any]:
    """Open an API with its own limits and two fresh operator keys."""
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def open_with(**limits: Any) -> tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]:
        suffix = uuid.uuid4().hex[:8]
        first, second = f"limited-first-{suffix}-token", f"limited-second-{suffix}-token"
        settings = make_settings(postgres_url, temporal_address, task_queue, **limits)
        settings.api_keys += f",{first}:operator:first-{suffix},{second}:operator:second-{suffix}"
        lifespan, client = await open_api(settings)
        opened.append((lifespan, client))
        return client, {"Authorization": f"Bearer {first}"}, {"Authorization": f"Bearer {second}"}

    yield open_with
    for lifespan, client in opened:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_requests_over_a_keys_budget_get_429_with_retry_after(limited: Any) -> None:
    client, first, second = await limited(rate_limit="5/minute")
    answers = [(await client.get("/api/v1/workflow-template", headers=first)).status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]
    refused = await client.get("/api/v1/workflow-template", headers=first)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await client.get("/api/v1/workflow-template", headers=second)).status_code == 200  # its own budget


async def test_session_starts_have_their_own_budget(limited: Any, llm_server: LlmServer) -> None:
    client, first, _ = await limited(rate_limit_session_starts="2/minute")
    goal = {"goal": f"[case:{case()}] plan", "agents": ["planner"]}
    answers = [
        (await client.post("/api/v1/orchestrator/session", json=goal, headers=first)).status_code for _ in range(3)
    ]
    assert answers == [201, 201, 429]


async def test_llm_tokens_per_key_per_day_and_default_session_budget(limited: Any, llm_server: LlmServer) -> None:
    client, first, second = await limited(llm_tokens_per_key_per_day=300, session_default_token_budget=200)
    started = await client.post(
        "/api/v1/orchestrator/session",
        json={"goal": f"[case:{case()}] plan", "agents": ["planner", "reporter"]},
        headers=first,
    )
    assert started.status_code == 201 and started.json()["token_budget"] == 200  # the default budget
    session_id = started.json()["session_id"]
    for _ in range(200):
        done = (await client.get(f"/api/v1/orchestrator/session/{session_id}", headers=first)).json()
        if done["completed_ts"]:
            break
        await asyncio.sleep(0.1)
    assert done["session_status"] == "budget_exceeded" and done["tokens_used"] == 300
    refused = await client.post("/api/v1/orchestrator/session", json={"goal": "plan again"}, headers=first)
    assert refused.status_code == 429 and refused.json()["error"] == "llm_budget_used"
    assert refused.headers["retry-after"] == "3600"
    other = await client.post(
        "/api/v1/orchestrator/session", json={"goal": f"[case:{case()}] plan", "agents": ["planner"]}, headers=second
    )
    assert other.status_code == 201


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}}, "regular expressions"),
        ({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, "regular expressions"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/schema.json"}}}, "inside the schema"),
    ],
)
async def test_agent_output_schemas_refuse_patterns_and_remote_refs(
    api: Api, schema: dict[str, Any], words: str
) -> None:
    body = {
        "agent_name": f"schema-{uuid.uuid4().hex[:6]}",
        "agent_type": "checker",
        "capabilities": ["checking"],
        "system_prompt": "You check.",
        "output_schema": schema,
    }
    response = await api.request("POST", "/api/v1/orchestrator/agents", json=body)
    assert response.status_code == 422 and words in response.json()["detail"]
    local = {
        **body,
        "output_schema": {
            "type": "object",
            "$defs": {"s": {"type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/s"}},
        },
    }
    assert (await api.request("POST", "/api/v1/orchestrator/agents", json=local)).status_code == 201
