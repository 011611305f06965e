"""A process graph drawn for people: states placed in columns by their depth from the start, edges as
lines, as plain data the page's template turns into SVG (no script, no layout library)."""

from __future__ import annotations

from dataclasses import dataclass

from core.process.contracts import StateNode

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 46, 56, 18, 12


@dataclass(frozen=True)
class Box:
    id: int
    name: str
    x: int
    y: int
    kind: str  # current | taken | next | terminal-success | terminal-failure | other


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    taken: bool


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    boxes: list[Box]
    edges: list[Edge]


def draw(
    states: list[StateNode], *, current: int, taken: set[int], allowed: set[int], path: set[tuple[int, int]]
) -> Drawing:
    by_id = {s.id: s for s in states}
    # Longest-path layering (the graph is a validated DAG): every edge points one column or more to the
    # right, so no edge runs inside a column.
    depth: dict[int, int] = {}
    waiting = {s.id: sum(1 for p in s.parent_ids if p in by_id) for s in states}
    ready = sorted(sid for sid, count in waiting.items() if count == 0)
    while ready:
        sid = ready.pop(0)
        depth.setdefault(sid, 0)
        for child in by_id[sid].child_ids:
            if child in by_id:
                depth[child] = max(depth.get(child, 0), depth[sid] + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
    for s in states:  # only if the graph were not a DAG: put the rest at the end
        depth.setdefault(s.id, max(depth.values(), default=0) + 1)
    columns: dict[int, list[int]] = {}
    for sid in sorted(by_id):
        columns.setdefault(depth[sid], []).append(sid)
    place: dict[int, tuple[int, int]] = {}
    for column, ids in columns.items():
        for row, sid in enumerate(ids):
            place[sid] = (PAD + column * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    boxes = []
    for sid, (x, y) in place.items():
        state = by_id[sid]
        if sid == current:
            kind = "current"
        elif sid in allowed:
            kind = "next"
        elif sid in taken:
            kind = "taken"
        elif state.terminal_flag:
            kind = "terminal-success" if state.success else "terminal-failure"
        else:
            kind = "other"
        boxes.append(Box(sid, state.name, x, y, kind))
    edges = [
        Edge(
            place[s.id][0] + BOX_W,
            place[s.id][1] + BOX_H // 2,
            place[c][0],
            place[c][1] + BOX_H // 2,
            (s.id, c) in path,
        )
        for s in states
        for c in s.child_ids
        if c in place
    ]
    width = PAD * 2 + (max(columns) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(ids) for ids in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    return Drawing(width, height, boxes, edges)
