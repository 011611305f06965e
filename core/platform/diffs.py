"""What changed between two versions of a definition, as a graph: nodes added, removed and changed
(with the fields that differ), and edges added and removed. The designer draws it on its canvas; the
same answer serves a process template (states and their transitions) and a step workflow (steps, their
order and dependencies). Pure functions over plain JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field


class NodeChange(BaseModel):
    id: str
    fields: list[str] = Field(description="The node's fields whose values differ")


class GraphDiff(BaseModel):
    from_version: int
    to_version: int
    added_nodes: list[str]
    removed_nodes: list[str]
    changed_nodes: list[NodeChange]
    added_edges: list[tuple[str, str]]
    removed_edges: list[tuple[str, str]]

    @property
    def unchanged(self) -> bool:
        return not (
            self.added_nodes or self.removed_nodes or self.changed_nodes or self.added_edges or self.removed_edges
        )


def _graph_diff(
    nodes_a: dict[str, dict[str, Any]],
    nodes_b: dict[str, dict[str, Any]],
    edges_a: set[tuple[str, str]],
    edges_b: set[tuple[str, str]],
    versions: tuple[int, int],
) -> GraphDiff:
    changed = []
    for key in sorted(nodes_a.keys() & nodes_b.keys(), key=_natural):
        a, b = nodes_a[key], nodes_b[key]
        fields = sorted(f for f in a.keys() | b.keys() if a.get(f) != b.get(f))
        if fields:
            changed.append(NodeChange(id=key, fields=fields))
    return GraphDiff(
        from_version=versions[0],
        to_version=versions[1],
        added_nodes=sorted(nodes_b.keys() - nodes_a.keys(), key=_natural),
        removed_nodes=sorted(nodes_a.keys() - nodes_b.keys(), key=_natural),
        changed_nodes=changed,
        added_edges=sorted(edges_b - edges_a),
        removed_edges=sorted(edges_a - edges_b),
    )


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


# --------------------------------------------------------------------------- process templates


def _states(graph: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """A template's states by id (without their links, which are the edges) and its transitions."""
    states = graph.get("states", [])
    nodes = {str(s["id"]): {k: v for k, v in s.items() if k not in ("parent_ids", "child_ids")} for s in states}
    edges = {(str(s["id"]), str(c)) for s in states for c in s.get("child_ids", [])}
    return nodes, edges


def template_diff(graph_a: dict[str, Any], graph_b: dict[str, Any], versions: tuple[int, int]) -> GraphDiff:
    nodes_a, edges_a = _states(graph_a)
    nodes_b, edges_b = _states(graph_b)
    return _graph_diff(nodes_a, nodes_b, edges_a, edges_b, versions)


# --------------------------------------------------------------------------- step workflows

_NESTED = ("parallel", "branch", "foreach")


def _walk(steps: list[dict[str, Any]], prefix: str) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """Each step with its path (``lanes.a``, ``each.x``) and the step it follows in its list."""
    previous: str | None = None
    for step in steps:
        path = f"{prefix}{step.get('name', '?')}"
        yield path, step, previous
        previous = path
        for kind in _NESTED:
            block = step.get(kind)
            if not isinstance(block, dict):
                continue
            for key in ("steps", "then", "else"):
                if isinstance(block.get(key), list):
                    yield from _walk(block[key], f"{path}.{key}." if key != "steps" else f"{path}.")
            for branch in block.get("branches", []) if isinstance(block.get("branches"), list) else []:
                yield from _walk(branch.get("steps", []), f"{path}.{branch.get('name', '?')}.")


def _steps(definition: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """A workflow's steps by path (without their nested steps, which are nodes of their own) and its
    edges: the order within a list, or a step's dependencies when it names them."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()
    lists = [("", definition.get("steps", [])), ("compensations.", definition.get("compensations", []))]
    for prefix, steps in lists:
        for path, step, previous in _walk(steps, prefix):
            nodes[path] = {k: _without_steps(k, v) for k, v in step.items()}
            depends = step.get("dependencies")
            if isinstance(depends, list):
                parent = path.rsplit(".", 1)[0] + "." if "." in path else prefix
                edges |= {(f"{parent}{d}", path) for d in depends}
            elif previous is not None:
                edges.add((previous, path))
    return nodes, edges


def _without_steps(key: str, value: Any) -> Any:
    """A nested block's own settings, not its steps (those are compared as nodes of their own)."""
    if key in _NESTED and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("steps", "then", "else", "branches")}
    return value


def workflow_diff(a: dict[str, Any], b: dict[str, Any], versions: tuple[int, int]) -> GraphDiff:
    nodes_a, edges_a = _steps(a)
    nodes_b, edges_b = _steps(b)
    return _graph_diff(nodes_a, nodes_b, edges_a, edges_b, versions)
