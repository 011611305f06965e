"""Validation of industry DAG templates (pure: no I/O).

A template is rejected with the first broken rule, naming the state and the rule, so the author can
fix it without guessing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from core.process.contracts import StateNode, WorkflowGraph


@dataclass(frozen=True)
class TemplateError(Exception):
    """A template breaks a rule; ``state_id`` is None for graph-wide rules."""

    rule: str
    message: str
    state_id: int | None = None

    def __str__(self) -> str:
        return self.message


def _label(state: StateNode) -> str:
    return f"state {state.id} ('{state.name}')"


def start_state(graph: WorkflowGraph) -> StateNode:
    """The start: the state without parents (the lowest id, if an invalid graph has several)."""
    return min((s for s in graph.states if not s.parent_ids), key=lambda s: s.id)


def validate_graph(graph: WorkflowGraph) -> None:
    """Raise TemplateError for the first rule the graph breaks."""
    by_id: dict[int, StateNode] = {}
    for state in graph.states:
        if state.id in by_id:
            raise TemplateError(
                "unique_ids",
                f"{_label(state)}: id {state.id} is already used by state '{by_id[state.id].name}'",
                state.id,
            )
        by_id[state.id] = state
    names: set[str] = set()
    for state in graph.states:
        if state.name in names:
            raise TemplateError("unique_names", f"{_label(state)}: state name is used twice", state.id)
        names.add(state.name)

    for state in graph.states:
        if len(set(state.child_ids)) != len(state.child_ids) or len(set(state.parent_ids)) != len(state.parent_ids):
            raise TemplateError("duplicate_links", f"{_label(state)} lists a parent or child twice", state.id)
        for child_id in state.child_ids:
            child = by_id.get(child_id)
            if child is None:
                raise TemplateError(
                    "unknown_state", f"{_label(state)} lists child {child_id}, which does not exist", state.id
                )
            if state.id not in child.parent_ids:
                raise TemplateError(
                    "parent_child_agreement",
                    f"{_label(state)} lists {child_id} as a child, but {_label(child)} "
                    f"does not list {state.id} as a parent",
                    state.id,
                )
        for parent_id in state.parent_ids:
            parent = by_id.get(parent_id)
            if parent is None:
                raise TemplateError(
                    "unknown_state",
                    f"{_label(state)} lists parent {parent_id}, which does not exist",
                    state.id,
                )
            if state.id not in parent.child_ids:
                raise TemplateError(
                    "parent_child_agreement",
                    f"{_label(state)} lists {parent_id} as a parent, but {_label(parent)} "
                    f"does not list {state.id} as a child",
                    state.id,
                )

    for state in graph.states:
        if state.terminal_flag:
            if state.child_ids:
                raise TemplateError(
                    "terminal_without_children", f"{_label(state)} is terminal but has children", state.id
                )
            if state.success is None:
                raise TemplateError(
                    "terminal_success",
                    f'{_label(state)} is terminal and must say whether it is a success ("success": true/false)',
                    state.id,
                )
            if state.approval is not None:
                raise TemplateError(
                    "approval_on_terminal",
                    f"{_label(state)} is terminal; it cannot have an approval gate",
                    state.id,
                )
        if (state.entity_name is None) != (state.entity_status is None):
            raise TemplateError(
                "entity_pair", f"{_label(state)}: give entity_name and entity_status together", state.id
            )
        gate = state.approval
        if gate is not None:
            for field, target in (
                ("default_to_state_id", gate.default_to_state_id),
                ("reject_to_state_id", gate.reject_to_state_id),
            ):
                if target is not None and target not in state.child_ids:
                    raise TemplateError(
                        "approval_target",
                        f"{_label(state)}: approval.{field} {target} is not one of its children {state.child_ids}",
                        state.id,
                    )
            if gate.on_timeout == "default_path" and (gate.timeout_seconds is None or gate.default_to_state_id is None):
                raise TemplateError(
                    "approval_timeout",
                    f"{_label(state)}: on_timeout 'default_path' needs timeout_seconds and default_to_state_id",
                    state.id,
                )

    _check_acyclic(graph, by_id)
    start = start_state(graph)  # exists: a finite acyclic graph has a state without parents
    reachable = _reach(start.id, by_id)
    for state in graph.states:
        if state.id not in reachable:
            raise TemplateError(
                "reachable",
                f"{_label(state)} cannot be reached from the start state {start.id}",
                state.id,
            )

    # Reverse search from the terminals: whatever they cannot be reached from is a dead end.
    can_finish: set[int] = {s.id for s in graph.states if s.terminal_flag}
    queue = deque(can_finish)
    while queue:
        for parent_id in by_id[queue.popleft()].parent_ids:
            if parent_id not in can_finish:
                can_finish.add(parent_id)
                queue.append(parent_id)
    for state in graph.states:
        if state.id not in can_finish:
            raise TemplateError(
                "reaches_terminal",
                f"{_label(state)} is not terminal and cannot reach a terminal state",
                state.id,
            )


def _reach(start_id: int, by_id: dict[int, StateNode]) -> set[int]:
    seen = {start_id}
    queue = deque([start_id])
    while queue:
        for child_id in by_id[queue.popleft()].child_ids:
            if child_id not in seen:
                seen.add(child_id)
                queue.append(child_id)
    return seen


def _check_acyclic(graph: WorkflowGraph, by_id: dict[int, StateNode]) -> None:
    """Depth-first search with colours; report a state on the first cycle found."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(by_id, white)
    for root in graph.states:
        if colour[root.id] != white:
            continue
        stack: list[tuple[int, int]] = [(root.id, 0)]
        colour[root.id] = grey
        while stack:
            node_id, index = stack[-1]
            children = by_id[node_id].child_ids
            if index < len(children):
                stack[-1] = (node_id, index + 1)
                child_id = children[index]
                if colour[child_id] == grey:
                    path = [sid for sid, _ in stack]
                    cycle = [*path[path.index(child_id) :], child_id]
                    raise TemplateError(
                        "acyclic",
                        f"{_label(by_id[child_id])} is on a cycle: {' -> '.join(map(str, cycle))}",
                        child_id,
                    )
                if colour[child_id] == white:
                    colour[child_id] = grey
                    stack.append((child_id, 0))
            else:
                colour[node_id] = black
                stack.pop()
