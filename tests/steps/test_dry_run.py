"""Dry runs of a changed definition against real recorded runs, with known differences and no effect:
nothing reaches the webhook receiver or the LLM server, and no entity, execution, step record or
notification row is written (counted before and after)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity
from core.notifications.tables import Notification
from core.process.tables import GraphData, WorkflowEvent
from core.steps.tables import StepExecution, StepRecord
from tests.support.api import Api
from tests.support.process import node, template, unique_code
from tests.support.servers import LlmServer, WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow


def _steps(kind: str, hook: str, condition: str, tail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": "notify", "tool": "http.request", "params": {"url": hook}},
        {"name": "account", "tool": "entity.create", "params": {"entity_type": kind, "name": "${input.customer}"}},
        {"name": "ask", "tool": "agent.call", "params": {"agent": "analyzer", "input": {"n": "${input.amount}"}}},
        {
            "name": "route",
            "branch": {
                "condition": condition,
                "then": [{"name": "big", "tool": "entity.create", "params": {"entity_type": kind, "name": "big"}}],
                "else": [{"name": "small", "tool": "entity.create", "params": {"entity_type": kind, "name": "small"}}],
            },
        },
        *tail,
    ]


async def _counts(engine: AsyncEngine, webhook: WebhookServer, llm: LlmServer) -> dict[str, int]:
    async with engine.connect() as conn:
        tables = {
            name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for name, table in (
                ("entities", Entity),
                ("executions", StepExecution),
                ("steps", StepRecord),
                ("notifications", Notification),
                ("instances", GraphData),
                ("events", WorkflowEvent),
            )
        }
    return {**tables, "webhook_hits": len(webhook.hits), "llm_requests": len(llm.requests)}


async def test_a_step_workflow_change_runs_in_shadow_with_known_differences(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer, llm_server: LlmServer
) -> None:
    name = unique_name("dryrun")
    kind = f"dry_{uuid.uuid4().hex[:6]}"
    hook = webhook_server.url(f"/ok/{name}")
    tell = {
        "name": "tell",
        "tool": "notify.send",
        "params": {"recipients": ["operator"], "subject": "done", "body": "x"},
    }
    await create(api, workflow(name, _steps(kind, hook, "input.amount > 100", [tell])))
    small = await finished(api, (await execute(api, name, {"customer": "Ann", "amount": 50}))["id"])
    big = await finished(api, (await execute(api, name, {"customer": "Bob", "amount": 500}))["id"])
    assert small["status"] == big["status"] == "completed"

    alert = {"name": "alert", "tool": "http.request", "params": {"url": webhook_server.url(f"/ok/{name}/alert")}}
    changed = workflow(name, _steps(kind, hook, "input.amount > 10", [alert]))
    before = await _counts(engine, webhook_server, llm_server)
    path = f"/api/v1/workflows/{name}/dry-run"

    bare = await api.request("POST", path, json={"definition": changed, "last_n": 5})
    assert bare.status_code == 200, bare.text
    runs = {r["execution_id"]: r for r in bare.json()["runs"]}
    assert list(runs) == [big["id"], small["id"]]  # newest first
    assert bare.json()["changed"] == 2
    # The 500 run takes the same arm; its new step has no record and no stub: it fails there.
    assert runs[big["id"]]["needs_stub"] == ["alert"] and runs[big["id"]]["dry_status"] == "failed"
    assert runs[big["id"]]["branches_differently"] == [] and runs[big["id"]]["steps_removed"] == ["tell"]
    # The 50 run now takes the other arm, whose step never ran for it.
    assert runs[small["id"]]["branches_differently"] == [{"path": "route", "recorded": "else", "now": "then"}]
    assert runs[small["id"]]["needs_stub"] == ["big"]

    stubs = {"alert": {"status": 200, "body": {"ok": True}}, "big": {"id": "stub", "name": "big"}}
    stubbed = await api.request("POST", path, json={"definition": changed, "stubs": stubs})
    assert stubbed.status_code == 200, stubbed.text
    runs = {r["execution_id"]: r for r in stubbed.json()["runs"]}
    one = runs[big["id"]]
    assert one["dry_status"] == "completed" and not one["status_changed"] and one["output_changed"]
    assert one["steps_added"] == ["alert"] and one["steps_removed"] == ["tell"] and one["needs_stub"] == []
    served = {s["path"]: s["served"] for s in one["steps"]}
    assert served == {
        "notify": "record",
        "account": "record",
        "ask": "record",
        "big": "record",
        "route": "evaluated",
        "alert": "stub",
    }
    other = runs[small["id"]]
    assert other["steps_added"] == ["alert", "big"] and other["steps_removed"] == ["small", "tell"]
    assert {s["path"]: s["output"] for s in other["steps"]}["account"]["name"] == "Ann"

    # No effect at all: nothing reached a receiver, nothing was written.
    assert await _counts(engine, webhook_server, llm_server) == before
    refused = await api.request("POST", path, json={"definition": {**changed, "name": "other"}})
    assert refused.status_code == 422
    broken = workflow(name, [{"name": "x", "tool": "nosuch.tool", "params": {}}])
    invalid = await api.request("POST", path, json={"definition": broken})
    assert invalid.status_code == 422 and invalid.json()["problems"][0]["field"].startswith("definition.")
    assert (await api.request("POST", path, role="operator", json={"definition": changed})).status_code == 403


async def test_a_template_change_replays_recorded_instances(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer, llm_server: LlmServer
) -> None:
    code = unique_code("DRYRUN")
    v1 = [node(0, [], [1]), node(1, [0], [2, 3]), node(2, [1], []), node(3, [1], [], success=False)]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, v1))).status_code == 201
    ids = [(await api.start(code, name=f"d{i}"))["instance_id"] for i in range(3)]
    for instance, path in zip(ids, ([1, 2], [1, 3], [1]), strict=True):
        for state in path:
            assert (await api.transition(instance, state)).status_code == 200
    # The change: state 2 is gone, 3 is now a success, and leaving 1 needs an approval.
    v2 = [node(0, [], [1]), node(1, [0], [3], approval={"roles": ["approver"]}), node(3, [1], [])]
    before = await _counts(engine, webhook_server, llm_server)
    response = await api.request(
        "POST", f"/api/v1/workflow-template/{code}/dry-run", json={"workflow_graph": {"states": v2}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["compared_version"] == 1 and body["totals"] == {"ends_differently": 1, "refused": 1, "same": 1}
    found = {i["instance_id"]: i for i in body["instances"]}
    assert found[ids[0]]["verdict"] == "refused" and found[ids[0]]["refused_at"] == 2
    assert "state 2 does not exist" in found[ids[0]]["reason"]
    assert found[ids[1]]["verdict"] == "ends_differently" and "as a success" in found[ids[1]]["reason"]
    assert found[ids[1]]["approvals_needed"] == [1]
    assert found[ids[2]]["verdict"] == "same"
    assert await _counts(engine, webhook_server, llm_server) == before
    bad = {"workflow_graph": {"states": [node(0, [], [1])]}}
    assert (await api.request("POST", f"/api/v1/workflow-template/{code}/dry-run", json=bad)).status_code == 422
