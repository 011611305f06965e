"""Version diffs as graphs (issue 23): what the designer draws as added, removed and changed nodes and
edges, for a template's states and a step workflow's steps (nested ones included)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from core.platform.diffs import template_diff, workflow_diff

PACK = json.loads((Path(__file__).resolve().parents[2] / "packs" / "process" / "PLUMB_MAINT.json").read_text())


def test_the_same_template_has_no_diff() -> None:
    graph = PACK["workflow_graph"]
    assert template_diff(graph, copy.deepcopy(graph), (1, 2)).unchanged


def test_a_template_diff_names_states_and_transitions() -> None:
    a = PACK["workflow_graph"]
    b = copy.deepcopy(a)
    b["states"][1]["entity_status"] = "Booked"  # changed
    b["states"][1]["child_ids"].append(99)  # a new transition to a new state
    b["states"].append({**b["states"][-1], "id": 99, "name": "archived", "parent_ids": [1], "child_ids": []})
    removed = b["states"].pop(2)  # a state gone (its incoming transition too)
    for state in b["states"]:
        state["child_ids"] = [c for c in state["child_ids"] if c != removed["id"]]
    diff = template_diff(a, b, (1, 2))
    assert diff.added_nodes == ["99"] and diff.removed_nodes == [str(removed["id"])]
    assert [(c.id, c.fields) for c in diff.changed_nodes] == [("1", ["entity_status"])]
    assert ("1", "99") in diff.added_edges
    assert all(str(removed["id"]) in edge for edge in diff.removed_edges) and diff.removed_edges


def test_a_workflow_diff_walks_nested_steps() -> None:
    def definition(url: str, extra: bool) -> dict[str, object]:
        lanes = [{"name": "x", "steps": [{"name": "call", "tool": "http.request", "params": {"url": url}}]}]
        lanes.append({"name": "y", "steps": [{"name": "note", "tool": "notify.send", "params": {}}]})
        steps: list[dict[str, object]] = [
            {"name": "first", "tool": "entity.get", "params": {"id": "${input.id}"}},
            {"name": "fan", "parallel": {"branches": lanes}},
        ]
        if extra:
            steps.append({"name": "last", "tool": "entity.update", "params": {"id": "${input.id}"}})
        return {"name": "w", "steps": steps}

    diff = workflow_diff(definition("https://a.example/", False), definition("https://b.example/", True), (1, 2))
    assert diff.added_nodes == ["last"] and diff.removed_nodes == []
    assert [(c.id, c.fields) for c in diff.changed_nodes] == [("fan.x.call", ["params"])]
    assert diff.added_edges == [("fan", "last")] and diff.removed_edges == []
