"""The step-workflow API: the published schema, each validation error as a 422 naming its path,
versions (a running execution keeps its own), disabled workflows, idempotent execute, cancel, roles."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity
from tests.support.api import Api, eventually
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, execution, finished, unique_name, workflow


def make(name: str, n: int = 1) -> dict[str, Any]:
    return {"name": name, "tool": "entity.create", "params": {"entity_type": "api_test", "name": f"n{n}"}}


async def test_the_schema_publishes_the_format_and_every_tool(api: Api) -> None:
    response = await api.request("GET", "/api/v1/workflows/schema", role="viewer")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"name", "steps", "config"} <= set(body["definition"]["properties"])
    tools = {t["name"]: t for t in body["tools"]}
    for name in (
        "entity.get",
        "entity.create",
        "entity.update",
        "entity.link",
        "notify.send",
        "email.send",
        "http.request",
        "script.run",
        "agent.call",
        "workflow.run",
        "instance.start",
        "instance.transition",
        "testmcp.add",
        "testmcp.echo",
    ):
        assert name in tools, name
    assert tools["entity.create"]["params"]["required"] == ["entity_type", "name"]
    assert tools["testmcp.add"]["source"] == "mcp" and tools["testmcp.add"]["params"]["required"] == ["a", "b"]
    assert "start_workflow" in {a["name"] for a in body["rule_actions"]}


BAD: list[tuple[str, list[dict[str, Any]], dict[str, Any], str, str]] = [
    ("bad step name", [{**make("x"), "name": "Bad-Name"}], {}, "steps[0].name", "pattern"),
    ("duplicate step", [make("same"), make("same", 2)], {}, "steps[1].name", "earlier step"),
    ("unknown tool", [make("a"), {"name": "b", "tool": "nosuch.tool"}], {}, "steps[1].tool", "unknown tool"),
    ("unknown mcp tool", [{"name": "a", "tool": "testmcp.nosuch"}], {}, "steps[0].tool", "unknown tool"),
    (
        "missing param",
        [{"name": "a", "tool": "entity.create", "params": {"name": "x"}}],
        {},
        "steps[0].params.entity_type",
        "required",
    ),
    (
        "wrong param type",
        [{"name": "a", "tool": "entity.create", "params": {"entity_type": "t", "name": 5}}],
        {},
        "steps[0].params.name",
        "string",
    ),
    (
        "mcp param type",
        [{"name": "a", "tool": "testmcp.add", "params": {"a": "x", "b": 1}}],
        {},
        "steps[0].params.a",
        "number",
    ),
    (
        "later step",
        [{**make("a"), "params": {"entity_type": "t", "name": "${b.name}"}}, make("b")],
        {},
        "steps[0].params.name",
        "not input, context or an earlier step",
    ),
    (
        "unknown root",
        [{**make("a"), "params": {"entity_type": "t", "name": "${repo.owner}"}}],
        {},
        "steps[0].params.name",
        "'repo'",
    ),
    (
        "url host from data",
        [{"name": "a", "tool": "http.request", "params": {"url": "https://${input.host}/x"}}],
        {},
        "steps[0].params.url",
        "written in the definition",
    ),
    (
        "whole url from data",
        [{"name": "a", "tool": "http.request", "params": {"url": "${input.url}"}}],
        {},
        "steps[0].params.url",
        "written in the definition",
    ),
    ("bad CEL", [{**make("a"), "if": "input.x >"}], {}, "steps[0].if", "parse"),
    ("reserved variable", [{**make("a"), "assign": "input"}], {}, "steps[0].assign", "reserved"),
    ("bad retry", [{**make("a"), "retry": {"maxAttempts": 0}}], {}, "steps[0].retry.maxAttempts", "greater"),
    (
        "bad backoff",
        [{**make("a"), "retry": {"maxAttempts": 2, "backoff": "random"}}],
        {},
        "steps[0].retry.backoff",
        "fixed",
    ),
    ("bad config", [make("a")], {"timeoutMs": 0}, "config.timeoutMs", "greater"),
    ("unknown field", [{**make("a"), "retries": 3}], {}, "steps[0].retries", "unknown field"),
]


@pytest.mark.parametrize(("case", "steps", "config", "path", "words"), BAD, ids=[b[0] for b in BAD])
async def test_each_validation_error_is_a_422_naming_its_path(
    api: Api, case: str, steps: list[dict[str, Any]], config: dict[str, Any], path: str, words: str
) -> None:
    response = await api.request("POST", "/api/v1/workflows", json=workflow(unique_name("bad"), steps, **config))
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert any(p["field"] == path and words in p["message"] for p in problems), problems
    assert path in response.json()["detail"]


async def test_versions_and_a_running_execution_keeps_its_own(api: Api, webhook_server: WebhookServer) -> None:
    name = unique_name("versioned")
    slow = webhook_server.url(f"/fail/{name}")
    v1 = workflow(
        name,
        [
            {
                "name": "wait",
                "tool": "http.request",
                "params": {"url": slow},
                "retry": {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 400},
            },
            make("v1_step"),
        ],
        continueOnError=True,
    )
    assert (await create(api, v1))["version"] == 1
    assert (await api.request("POST", "/api/v1/workflows", json=v1)).status_code == 409
    started = await execute(api, name)
    v2 = workflow(name, [make("v2_step")])
    put = await api.request("PUT", f"/api/v1/workflows/{name}", json=v2)
    assert put.status_code == 200 and put.json()["version"] == 2, put.text
    done = await finished(api, started["id"])
    assert done["workflow_version"] == 1
    assert [s["name"] for s in done["steps"]] == ["wait", "v1_step"]
    again = await finished(api, (await execute(api, name))["id"])
    assert again["workflow_version"] == 2 and [s["name"] for s in again["steps"]] == ["v2_step"]
    old = await api.request("GET", f"/api/v1/workflows/{name}?version=1", role="viewer")
    assert old.json()["definition"]["steps"][1]["name"] == "v1_step"
    versions = await api.request("GET", f"/api/v1/workflows/{name}/versions", role="viewer")
    assert [v["version"] for v in versions.json()] == [1, 2]
    pinned = await finished(api, (await execute(api, name, version=1))["id"])
    assert pinned["workflow_version"] == 1
    renamed = await api.request("PUT", f"/api/v1/workflows/{name}", json=workflow("other_name", [make("a")]))
    assert renamed.status_code == 422
    missing = await api.request("PUT", f"/api/v1/workflows/{unique_name('none')}", json=workflow("x", [make("a")]))
    assert missing.status_code == 422  # the name must match the path first


async def test_a_disabled_workflow_refuses_new_executions(api: Api) -> None:
    name = unique_name("disabled")
    await create(api, workflow(name, [make("a")]))
    disabled = {**workflow(name, [make("a")]), "enabled": False}
    assert (await api.request("PUT", f"/api/v1/workflows/{name}", json=disabled)).status_code == 200
    refused = await api.request("POST", f"/api/v1/workflows/{name}/execute", role="operator", json={})
    assert refused.status_code == 409 and refused.json()["error"] == "workflow_disabled"
    unknown = await api.request("POST", f"/api/v1/workflows/{unique_name('no')}/execute", role="operator", json={})
    assert unknown.status_code == 404


async def test_execute_with_an_idempotency_key_starts_one_execution(api: Api, engine: AsyncEngine) -> None:
    name = unique_name("idem")
    kind = unique_name("idem_kind")
    await create(
        api, workflow(name, [{"name": "a", "tool": "entity.create", "params": {"entity_type": kind, "name": "once"}}])
    )
    first = await execute(api, name, {"n": 1}, key="order-42")
    second = await execute(api, name, {"n": 1}, key="order-42")
    assert first["id"] == second["id"]
    await finished(api, first["id"])
    third = await execute(api, name, {"n": 1}, key="order-42")  # after it finished: the same, nothing new
    assert third["id"] == first["id"] and third["status"] == "completed"
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).where(Entity.entity_type == kind))).scalar_one()
    assert count == 1
    other = await execute(api, name, {"n": 1}, key="order-43")
    assert other["id"] != first["id"]


async def test_cancel_stops_a_running_execution(api: Api, webhook_server: WebhookServer) -> None:
    name = unique_name("cancel")
    await create(
        api,
        workflow(
            name,
            [
                {
                    "name": "wait",
                    "tool": "http.request",
                    "params": {"url": webhook_server.url(f"/fail/{name}")},
                    "retry": {"maxAttempts": 10, "backoff": "fixed", "initialIntervalMs": 60_000},
                },
                make("never"),
            ],
        ),
    )
    started = await execute(api, name)

    async def waiting() -> dict[str, Any] | None:
        found = await execution(api, started["id"])
        live = found.get("live") or {}
        return found if live.get("waiting_until") else None

    live = await eventually(waiting)
    assert live["live"]["current_step"] == "wait" and live["live"]["attempt"] == 1
    assert (
        await api.request("POST", f"/api/v1/workflow-executions/{started['id']}/cancel", role="viewer")
    ).status_code == 403
    cancelled = await api.request("POST", f"/api/v1/workflow-executions/{started['id']}/cancel", role="operator")
    assert cancelled.status_code == 202, cancelled.text
    done = await finished(api, started["id"])
    assert done["status"] == "cancelled"
    assert "never" not in {s["name"] for s in done["steps"]}
    again = await api.request("POST", f"/api/v1/workflow-executions/{started['id']}/cancel", role="operator")
    assert again.status_code == 409


async def test_roles(api: Api) -> None:
    body = workflow(unique_name("roles"), [make("a")])
    assert (await api.request("POST", "/api/v1/workflows", role="operator", json=body)).status_code == 403
    await create(api, body)
    assert (
        await api.request("POST", f"/api/v1/workflows/{body['name']}/execute", role="viewer", json={})
    ).status_code == 403
    assert (await api.request("GET", f"/api/v1/workflows/{body['name']}", role="viewer")).status_code == 200
    assert (await api.request("GET", "/api/v1/workflows", role=None)).status_code == 401
