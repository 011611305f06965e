"""Issue 20: MCP servers that break. A server that crashes at start, never answers ``initialize`` or
answers 401 is listed as unavailable with its reason while the other servers' tools stay usable; storing
a workflow that names it is a 422 naming the server, never a plain 500 (the ``mcp`` package raises inside
anyio task groups, so errors arrive as exception groups). A 401 is a permanent failure."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, make_settings, open_api
from tests.support.servers import WebhookServer
from tests.support.steps import unique_name, workflow


@pytest.fixture
async def broken_api(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None, webhook_server: WebhookServer
) -> AsyncIterator[Api]:
    webhook_server.respond("/mcp-401", {"error": "unauthorized"}, [401])
    settings = make_settings(
        postgres_url,
        temporal_address,
        task_queue,
        mcp_servers={
            "crashes": {"command": [sys.executable, "-c", "import sys; sys.exit(3)"], "timeout_seconds": 5},
            "hangs": {"command": [sys.executable, "-c", "import time; time.sleep(60)"], "timeout_seconds": 1},
            "refuses": {"url": webhook_server.url("/mcp-401"), "timeout_seconds": 5},
            "testmcp": {"command": [sys.executable, "-m", "tests.support.mcp_server"]},
        },
    )
    lifespan, client = await open_api(settings)
    try:
        yield Api(client)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_broken_servers_are_listed_as_unavailable_and_the_others_stay_usable(broken_api: Api) -> None:
    schema = await broken_api.request("GET", "/api/v1/workflows/schema", role="viewer")
    assert schema.status_code == 200, schema.text
    unavailable = schema.json()["unavailable_mcp_servers"]
    assert set(unavailable) == {"crashes", "hangs", "refuses"}, unavailable
    assert "could not be reached" in unavailable["crashes"] or "failed" in unavailable["crashes"]
    assert "did not answer in time" in unavailable["hangs"], unavailable["hangs"]
    assert "refused Trellis (401" in unavailable["refuses"], unavailable["refuses"]
    assert "testmcp.add" in {t["name"] for t in schema.json()["tools"]}
    for server in ("crashes", "refuses"):
        stored = await broken_api.request(
            "POST",
            "/api/v1/workflows",
            json=workflow(unique_name("broken"), [{"name": "call", "tool": f"{server}.anything", "params": {}}]),
        )
        assert stored.status_code == 422, stored.text
        assert f"MCP server '{server}'" in stored.json()["detail"]
    fine = await broken_api.request(
        "POST",
        "/api/v1/workflows",
        json=workflow(unique_name("fine"), [{"name": "sum", "tool": "testmcp.add", "params": {"a": 1, "b": 2}}]),
    )
    assert fine.status_code == 201, fine.text
