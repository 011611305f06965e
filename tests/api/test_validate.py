"""Validate without storing (issue 23's designer asks the server as one edits): a template or a step
workflow checked exactly as saving it would be, each problem at the path of its field or node, and
nothing stored."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from tests.support.api import Api
from tests.support.steps import unique_name, workflow

PACK = json.loads((Path(__file__).resolve().parents[2] / "packs" / "process" / "PLUMB_MAINT.json").read_text())


async def test_a_template_is_validated_and_not_stored(api: Api) -> None:
    template: dict[str, Any] = copy.deepcopy(PACK) | {"code": "VALIDATE_ONLY"}
    ok = await api.request("POST", "/api/v1/workflow-template/validate", role="viewer", json=template)
    assert ok.status_code == 200 and ok.json() == {"valid": True, "problems": []}

    broken = copy.deepcopy(template)
    broken["workflow_graph"]["states"][1]["child_ids"].append(999)  # a child that does not exist
    answer = (await api.request("POST", "/api/v1/workflow-template/validate", json=broken)).json()
    assert answer["valid"] is False
    [problem] = answer["problems"]
    assert problem["field"] == "workflow_graph.states[1]" and "999" in problem["message"]

    # A malformed one is refused on the way in, each field at its path (as saving it would be).
    shapeless = copy.deepcopy(template)
    del shapeless["name"]
    shapeless["workflow_graph"]["states"][2]["avg_duration_days"] = "soon"
    refused = await api.request("POST", "/api/v1/workflow-template/validate", json=shapeless)
    assert refused.status_code == 422
    fields = {p["field"] for p in refused.json()["problems"]}
    assert {"name", "workflow_graph.states[2].avg_duration_days"} <= fields

    assert (await api.request("GET", "/api/v1/workflow-template/VALIDATE_ONLY")).status_code == 404
    assert (
        await api.request("POST", "/api/v1/workflow-template/validate", role=None, json=template)
    ).status_code == 401


async def test_a_step_workflow_is_validated_and_not_stored(api: Api) -> None:
    name = unique_name("validate_only")
    steps = [
        {"name": "made", "tool": "entity.create", "params": {"entity_type": "validated", "name": "x"}},
        {"name": "done", "tool": "entity.update", "params": {"id": "${nosuch.id}", "status": "done"}},
    ]
    answer = (await api.request("POST", "/api/v1/workflows/validate", role="viewer", json=workflow(name, steps))).json()
    assert answer["valid"] is False
    assert [p["field"] for p in answer["problems"]] == ["steps[1].params.id"]
    assert "nosuch" in answer["problems"][0]["message"]

    steps[1]["params"]["id"] = "${made.id}"
    fixed = await api.request("POST", "/api/v1/workflows/validate", json=workflow(name, steps))
    assert fixed.json() == {"valid": True, "problems": []}
    not_a_step = await api.request("POST", "/api/v1/workflows/validate", json={"name": name, "steps": [{}]})
    assert not_a_step.status_code == 422
    assert all(p["field"].startswith("steps[0]") for p in not_a_step.json()["problems"])
    assert (await api.request("GET", f"/api/v1/workflows/{name}")).status_code == 404


async def test_template_versions_count_running_instances_and_diff(api: Api) -> None:
    code = f"DIFF_{uuid.uuid4().hex[:6].upper()}"
    v1: dict[str, Any] = copy.deepcopy(PACK) | {"code": code}
    assert (await api.request("POST", "/api/v1/workflow-template", json=v1)).status_code == 201
    await api.start(code, name="Diffco")
    v2 = copy.deepcopy(v1)
    v2["workflow_graph"]["states"][1]["entity_status"] = "Booked"
    assert (await api.request("POST", "/api/v1/workflow-template", json=v2)).status_code == 201

    listed = (await api.request("GET", f"/api/v1/workflow-template/{code}/versions", role="viewer")).json()
    assert [(v["version"], v["running"]) for v in listed] == [(1, 1), (2, 0)]
    diff = (await api.request("GET", f"/api/v1/workflow-template/{code}/diff", params={"from": 1, "to": 2})).json()
    assert diff["changed_nodes"] == [{"id": "1", "fields": ["entity_status"]}]
    assert diff["added_nodes"] == diff["removed_nodes"] == diff["added_edges"] == diff["removed_edges"] == []
    missing = await api.request("GET", f"/api/v1/workflow-template/{code}/diff", params={"from": 1, "to": 9})
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]
    assert (await api.request("GET", "/api/v1/workflow-template/NO_SUCH_CODE/versions")).status_code == 404


async def test_workflow_versions_diff(api: Api) -> None:
    name = unique_name("diffed")
    steps = [{"name": "made", "tool": "entity.create", "params": {"entity_type": "diffed", "name": "a"}}]
    assert (await api.request("POST", "/api/v1/workflows", json=workflow(name, steps))).status_code == 201
    steps[0]["params"]["name"] = "b"
    steps.append({"name": "done", "tool": "entity.update", "params": {"id": "${made.id}", "status": "done"}})
    assert (await api.request("PUT", f"/api/v1/workflows/{name}", json=workflow(name, steps))).status_code == 200
    diff = (await api.request("GET", f"/api/v1/workflows/{name}/diff", params={"from": 1, "to": 2})).json()
    assert diff["added_nodes"] == ["done"] and diff["changed_nodes"] == [{"id": "made", "fields": ["params"]}]
    assert diff["added_edges"] == [["made", "done"]]
    versions = (await api.request("GET", f"/api/v1/workflows/{name}/versions")).json()
    assert [(v["version"], v["running"]) for v in versions] == [(1, 0), (2, 0)]


async def test_an_earlier_version_is_restored_as_the_newest(api: Api) -> None:
    code = f"RESTORE_{uuid.uuid4().hex[:6].upper()}"
    v1: dict[str, Any] = copy.deepcopy(PACK) | {"code": code}
    await api.request("POST", "/api/v1/workflow-template", json=v1)
    v2 = copy.deepcopy(v1)
    v2["workflow_graph"]["states"][1]["entity_status"] = "Booked"
    await api.request("POST", "/api/v1/workflow-template", json=v2)
    refused = await api.request("POST", f"/api/v1/workflow-template/{code}/versions/1/restore", role="operator")
    assert refused.status_code == 403
    restored = await api.request("POST", f"/api/v1/workflow-template/{code}/versions/1/restore")
    assert restored.status_code == 201 and restored.json()["version"] == 3
    diff = (await api.request("GET", f"/api/v1/workflow-template/{code}/diff", params={"from": 1, "to": 3})).json()
    assert diff["changed_nodes"] == [] and diff["added_nodes"] == []
    gone = await api.request("POST", f"/api/v1/workflow-template/{code}/versions/7/restore")
    assert gone.status_code == 404

    name = unique_name("restored")
    steps = [{"name": "made", "tool": "entity.create", "params": {"entity_type": "restored", "name": "a"}}]
    await api.request("POST", "/api/v1/workflows", json=workflow(name, steps))
    steps[0]["params"]["name"] = "b"
    await api.request("PUT", f"/api/v1/workflows/{name}", json=workflow(name, steps))
    back = await api.request("POST", f"/api/v1/workflows/{name}/versions/1/restore")
    assert back.status_code == 201 and back.json()["version"] == 3
    assert back.json()["definition"]["steps"][0]["params"]["name"] == "a"
