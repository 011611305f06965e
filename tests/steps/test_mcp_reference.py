"""Trellis against MCP servers nobody on the team wrote (issue 20): the npm reference servers
``@modelcontextprotocol/server-everything``, ``server-memory`` and ``server-filesystem``, pinned, installed
from the npm registry by the test setup into .trellis/mcp-reference when missing, and run over stdio with
the machine's Node.js. Their tools are listed with output schemas and annotations, parameters are
checked at save, every kind of content they answer is kept, structured results chain by reference, and
a tool's refusal ends as a business failure."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.platform.paths import PROJECT_ROOT
from core.platform.temporal import connect_client
from tests.support.api import Api, make_settings, open_api
from tests.support.steps import run, unique_name, workflow
from worker import build_worker, condition_evaluator

VERSION = "2026.8.31"
PACKAGES = ("server-everything", "server-memory", "server-filesystem")
PREFIX = PROJECT_ROOT / ".trellis" / "mcp-reference"


def _installed() -> Path:
    """The reference servers' bin folder, installed with npm (pinned) when missing."""
    bin_dir = PREFIX / "node_modules" / ".bin"
    wanted = [bin_dir / f"mcp-{name}" for name in PACKAGES]
    if not all(p.exists() for p in wanted):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: install Node.js (Debian: nodejs npm) to run the MCP reference servers")
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--silent",
             *(f"@modelcontextprotocol/{name}@{VERSION}" for name in PACKAGES)],
            check=True, timeout=600,
        )  # fmt: skip
    return bin_dir


@pytest.fixture(scope="module")
async def reference_api(
    postgres_url: str,
    temporal_address: str,
    engine: AsyncEngine,
    worker: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Api, Path]]:
    """A worker and an API whose MCP servers are the three reference servers; yields the API and the
    folder the filesystem server may use."""
    bin_dir = _installed()
    folder = tmp_path_factory.mktemp("mcp-files")
    (folder / "order.txt").write_text("order A-7: 2 x sink\n")
    queue = f"mcp-reference-{uuid.uuid4()}"
    settings = make_settings(
        postgres_url,
        temporal_address,
        queue,
        mcp_servers={
            "everything": {"command": [str(bin_dir / "mcp-server-everything"), "stdio"], "timeout_seconds": 20},
            "memory": {
                "command": [str(bin_dir / "mcp-server-memory")],
                "env": {"MEMORY_FILE_PATH": str(folder / "memory.jsonl")},
                "timeout_seconds": 20,
            },
            "files": {"command": [str(bin_dir / "mcp-server-filesystem"), str(folder)], "timeout_seconds": 20},
        },
    )
    client = await connect_client(settings)
    evaluator = condition_evaluator(settings)
    lifespan, http = await open_api(settings)
    try:
        async with build_worker(client, engine, queue, settings, evaluator):
            yield Api(http), folder
    finally:
        evaluator.close()
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_the_reference_servers_tools_are_listed_with_their_schemas(reference_api: tuple[Api, Path]) -> None:
    api, _ = reference_api
    listing = (await api.request("GET", "/api/v1/workflows/schema", role="viewer")).json()
    tools = {tool["name"]: tool for tool in listing["tools"]}
    assert not listing["unavailable_mcp_servers"], listing["unavailable_mcp_servers"]
    for name in ("everything.get-sum", "everything.get-tiny-image", "memory.create_entities", "files.read_text_file"):
        assert name in tools, sorted(tools)
    # Declared output schemas are published (the structured result's shape under "result").
    structured = tools["everything.get-structured-content"]["output"]["properties"]["result"]
    assert set(structured["properties"]) >= {"temperature", "conditions", "humidity"}, structured
    assert tools["files.read_text_file"]["annotations"]["readOnlyHint"] is True

    # Parameters are checked at save against the server's own input schema.
    bad = workflow(unique_name("ref"), [{"name": "sum", "tool": "everything.get-sum", "params": {"a": "two"}}])
    refused = await api.request("POST", "/api/v1/workflows", json=bad)
    assert refused.status_code == 422, refused.text
    assert {p["field"] for p in refused.json()["problems"]} == {"steps[0].params.a", "steps[0].params"}, refused.text


async def test_every_kind_of_content_is_kept_and_results_chain(reference_api: tuple[Api, Path]) -> None:
    api, folder = reference_api
    done = await run(
        api,
        [
            {"name": "sum", "tool": "everything.get-sum", "params": {"a": 2, "b": 3}},
            {"name": "weather", "tool": "everything.get-structured-content", "params": {"location": "Chicago"}},
            {"name": "pic", "tool": "everything.get-tiny-image", "params": {}},
            {"name": "links", "tool": "everything.get-resource-links", "params": {"count": 2}},
            {"name": "ref", "tool": "everything.get-resource-reference", "params": {"resourceType": "Text"}},
            {"name": "read", "tool": "files.read_text_file", "params": {"path": str(folder / "order.txt")}},
            {
                "name": "note",
                "tool": "everything.echo",
                "params": {"message": "${weather.result.conditions} / ${read.result.content}"},
            },
        ],
    )
    assert done["status"] == "completed", done["error"]
    out = done["output"]
    assert "5" in str(out["sum"]["result"]), out["sum"]
    assert isinstance(out["weather"]["result"]["temperature"], int | float), out["weather"]
    assert "image" in [item["type"] for item in out["pic"]["content"]], out["pic"]["content"]
    assert [item["type"] for item in out["links"]["content"]].count("resource_link") == 2, out["links"]["content"]
    assert "resource" in [item["type"] for item in out["ref"]["content"]], out["ref"]["content"]
    assert out["read"]["result"]["content"] == "order A-7: 2 x sink\n", out["read"]
    assert "order A-7" in str(out["note"]["result"]), out["note"]


async def test_memory_keeps_what_a_run_wrote_and_a_refusal_is_a_business_failure(
    reference_api: tuple[Api, Path],
) -> None:
    api, _ = reference_api
    name = f"customer-{uuid.uuid4().hex[:6]}"
    done = await run(
        api,
        [
            {
                "name": "remember",
                "tool": "memory.create_entities",
                "params": {"entities": [{"name": name, "entityType": "customer", "observations": ["pays late"]}]},
            },
            {"name": "recall", "tool": "memory.open_nodes", "params": {"names": [name]}},
        ],
    )
    assert done["status"] == "completed", done["error"]
    [entity] = done["output"]["recall"]["result"]["entities"]
    assert entity["name"] == name and entity["observations"] == ["pays late"]

    # Outside the folder the filesystem server allows: it refuses, and the step fails as a business
    # failure (not retried), with the server's reason.
    outside = await run(
        api,
        [{"name": "peek", "tool": "files.read_text_file", "params": {"path": "/etc/hostname"}}],
        maxRetries=3,
    )
    assert outside["status"] == "failed" and "answered with an error" in outside["error"], outside["error"]
    [step] = outside["steps"]
    assert step["retry_count"] == 0, step
