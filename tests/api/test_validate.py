"""Validate without storing (issue 23's designer asks the server as one edits): a template or a step
workflow checked exactly as saving it would be, each problem at the path of its field or node, and
nothing stored."""

from __future__ import annotations

import copy
import json
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

    shapeless = copy.deepcopy(template)
    del shapeless["name"]
    shapeless["workflow_graph"]["states"][2]["avg_duration_days"] = "soon"
    answer = (await api.request("POST", "/api/v1/workflow-template/validate", json=shapeless)).json()
    fields = {p["field"] for p in answer["problems"]}
    assert answer["valid"] is False and {"name", "workflow_graph.states[2].avg_duration_days"} <= fields

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
    not_a_step = (await api.request("POST", "/api/v1/workflows/validate", json={"name": name, "steps": [{}]})).json()
    assert not_a_step["valid"] is False and all(p["field"].startswith("steps[0]") for p in not_a_step["problems"])
    assert (await api.request("GET", f"/api/v1/workflows/{name}")).status_code == 404
