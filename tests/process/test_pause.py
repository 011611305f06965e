"""Pausing process instances: refused transitions and decisions naming who paused and why, an
approval time-out that falls due while paused acting on resume, and bulk pause and resume by template."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api, eventually
from tests.support.process import events_of, graph_row, node, template, unique_code

BULK = "/api/v1/workflow-instance/bulk/pause-resume"


async def _template(api: Api, states: list[dict[str, Any]]) -> str:
    code = unique_code("PAUSE")
    response = await api.request("POST", "/api/v1/workflow-template", json=template(code, states))
    assert response.status_code == 201, response.text
    return code


async def test_a_paused_instance_refuses_moves_until_resumed(api: Api, engine: AsyncEngine) -> None:
    code = await _template(
        api, [node(0, [], [1]), node(1, [0], [2], approval={"roles": ["approver"]}), node(2, [1], [])]
    )
    instance = (await api.start(code))["instance_id"]
    assert (await api.transition(instance, 1)).status_code == 200
    path = f"/api/v1/workflow-instance/{instance}"

    paused = await api.request("POST", f"{path}/pause", json={"reason": "customer data is being corrected"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"]["actor"] == "admin-user"
    again = await api.request("POST", f"{path}/pause", json={"reason": "twice"})
    assert again.status_code == 409 and again.json()["error"] == "already_paused"

    refused = await api.decide(instance, "approve")
    assert refused.status_code == 409 and refused.json()["error"] == "paused"
    assert "admin-user" in refused.json()["detail"] and "customer data is being corrected" in refused.json()["detail"]
    assert refused.json()["paused"]["reason"] == "customer data is being corrected"
    moved = await api.transition(instance, 2)
    assert moved.status_code == 409 and moved.json()["error"] == "paused"
    assert (await graph_row(engine, instance))["paused"]["reason"] == "customer data is being corrected"
    # Bad input is a clear 422, not a pause without a reason.
    assert (await api.request("POST", f"{path}/pause", json={"reason": ""})).status_code == 422
    assert (await api.request("POST", f"{path}/pause", json={"reason": "x"}, role="viewer")).status_code == 403

    resumed = await api.request("POST", f"{path}/resume", json={"comment": "fixed"})
    assert resumed.status_code == 200 and resumed.json()["paused"] is None
    not_paused = await api.request("POST", f"{path}/resume", json={})
    assert not_paused.status_code == 409 and not_paused.json()["error"] == "not_paused"
    assert (await api.decide(instance, "approve")).status_code == 200
    assert (await api.transition(instance, 2)).status_code == 200
    types = [e["event_type"] for e in await events_of(engine, instance)]
    assert types.count("instance_paused") == 1 and types.count("instance_resumed") == 1
    assert (await graph_row(engine, instance))["paused"] is None


async def test_a_timeout_falling_due_while_paused_acts_on_resume(api: Api, engine: AsyncEngine) -> None:
    gate = {"roles": ["approver"], "timeout_seconds": 1, "on_timeout": "default_path", "default_to_state_id": 2}
    code = await _template(
        api, [node(0, [], [1]), node(1, [0], [2, 3], approval=gate), node(2, [1], []), node(3, [1], [])]
    )
    instance = (await api.start(code))["instance_id"]
    assert (await api.transition(instance, 1)).status_code == 200
    path = f"/api/v1/workflow-instance/{instance}"
    assert (await api.request("POST", f"{path}/pause", json={"reason": "hold"})).status_code == 200
    await asyncio.sleep(2.5)  # the gate's 1 s time-out falls due while paused: nothing happens yet
    view = (await api.request("GET", path)).json()
    assert view["current_state"]["id"] == 1 and view["workflow_status"] == "active"
    assert "approval_timed_out" not in [e["event_type"] for e in await events_of(engine, instance)]

    assert (await api.request("POST", f"{path}/resume", json={})).status_code == 200

    async def defaulted() -> bool:
        return (await api.request("GET", path)).json()["current_state"]["id"] == 2

    await eventually(defaulted, attempts=100)
    types = [e["event_type"] for e in await events_of(engine, instance)]
    assert types.index("instance_resumed") < types.index("approval_timed_out")


async def test_bulk_pause_and_resume_by_template(api: Api, engine: AsyncEngine) -> None:
    code = await _template(api, [node(0, [], [1]), node(1, [0], [2]), node(2, [1], [])])
    ids = [(await api.start(code, name=f"bulk-{i}"))["instance_id"] for i in range(4)]
    assert (await api.transition(ids[0], 1)).status_code == 200
    only_state_1 = await api.request(
        "POST",
        BULK,
        json={"action": "pause", "template_code": code, "state_ids": [1], "reason": "audit"},
    )
    assert only_state_1.json()["changed"] == [ids[0]]
    everything = await api.request(
        "POST",
        BULK,
        json={"action": "pause", "template_code": code, "reason": "audit"},
    )
    assert sorted(everything.json()["changed"]) == sorted(ids[1:])  # the paused one is not paused twice
    for instance in ids:
        assert (await api.transition(instance, 2 if instance == ids[0] else 1)).json()["error"] == "paused"
    resumed = await api.request("POST", BULK, json={"action": "resume", "template_code": code})
    assert sorted(resumed.json()["changed"]) == sorted(ids) and resumed.json()["refused"] == []
    assert (await api.transition(ids[1], 1)).status_code == 200
    bad = await api.request("POST", BULK, json={"action": "stop", "template_code": code})
    assert bad.status_code == 422
