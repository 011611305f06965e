"""Recommendations for a process template version (seed 004's optimizer, issue 26 §4), from its graph
and its instances' recorded transitions:

- **over expected time**: states whose mean time spent is over the author's ``avg_duration_days``,
  worst first, once ``MIN_DEPARTURES`` visits have ended;
- **transitions never taken**: a path out of a state that no instance took, once ``MIN_DEPARTURES``
  instances left that state (fewer: a note says it cannot be called yet);
- **rarely reached**: states fewer than ``RARE`` of the version's instances reached, once
  ``MIN_STARTED`` started.

The thresholds are deliberately plain: each recommendation states the counts it rests on, so a
person can weigh it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.recommendations import Recommendation
from core.process.analytics import DAY, StateFigures
from core.process.contracts import WorkflowGraph

MIN_DEPARTURES = 20
MIN_STARTED = 50
RARE = 0.05


def recommend(
    graph: WorkflowGraph,
    states: list[StateFigures],
    taken: dict[tuple[int, int], int],
    reached: dict[int, int],
    started: int,
) -> tuple[list[Recommendation], list[str]]:
    """The recommendations and the notes on what could not be judged. ``taken``: transitions recorded
    per (from state, to state); ``reached``: instances that entered each state; ``started``: instances
    of the version."""
    names = {s.id: s.name for s in graph.states}
    out: list[Recommendation] = []
    notes: list[str] = []
    slow = [f for f in states if f.ratio is not None and f.ratio > 1 and f.left >= MIN_DEPARTURES]
    for f in sorted(slow, key=lambda f: -(f.ratio or 0.0)):
        spread = f.time_spent_seconds
        out.append(
            Recommendation(
                kind="over_expected_time",
                subjects=[f.name],
                title=f"{f.name} takes {f.ratio:g} times its expected {f.expected_days:g} days",
                detail=(
                    f"Mean {(spread.average or 0) / DAY:.1f} days, median {(spread.p50 or 0) / DAY:.1f}, "
                    f"95th percentile {(spread.p95 or 0) / DAY:.1f} over {f.left} visits that ended. "
                    "Look at what it waits for, or correct its expected time."
                ),
                figures={
                    "visits": f.left,
                    "expected_days": f.expected_days,
                    "mean_days": round((spread.average or 0) / DAY, 3),
                    "ratio": f.ratio,
                },
            )
        )
    for state in graph.states:
        if state.terminal_flag or not state.child_ids:
            continue
        departures = sum(n for (source, _), n in taken.items() if source == state.id)
        unused = [child for child in state.child_ids if taken.get((state.id, child), 0) == 0]
        if not unused:
            continue
        if departures < MIN_DEPARTURES:
            if departures:
                notes.append(
                    f"{state.name}: {departures} instances left it, fewer than {MIN_DEPARTURES}; "
                    "too few to call a path out of it unused"
                )
            continue
        for child in unused:
            target = names.get(child, f"state {child}")
            out.append(
                Recommendation(
                    kind="transition_never_taken",
                    subjects=[state.name, target],
                    title=f"No instance went from {state.name} to {target}",
                    detail=(
                        f"{departures} instances left {state.name} and none went to {target}. "
                        "If the path is not needed, removing it simplifies the choice people make there."
                    ),
                    figures={"departures": departures},
                )
            )
    if started < MIN_STARTED:
        notes.append(f"{started} instances started, fewer than {MIN_STARTED}: no state is called rarely reached yet")
        return out, notes
    for state in graph.states:
        if not state.parent_ids:
            continue  # a start state: every instance begins there
        count = reached.get(state.id, 0)
        share = count / started
        if share < RARE:
            out.append(
                Recommendation(
                    kind="rarely_reached",
                    subjects=[state.name],
                    title=f"Only {share:.1%} of instances reach {state.name}"
                    if count
                    else f"No instance reached {state.name}",
                    detail=(
                        f"{count} of {started} instances entered it. A state this rare may be an exception "
                        "better handled outside the main process, or a path nobody needs."
                    ),
                    figures={"reached": count, "started": started, "share": round(share, 4)},
                )
            )
    return out, notes


_TAKEN = """
    SELECT e.from_state_id, e.to_state_id, count(*) AS n
    FROM app.f_industry_workflow_events e
    JOIN app.d_industry_workflow_graph_data d ON d.id = e.workflow_data_id
    WHERE d.template_code = :code AND d.template_version = :version
      AND e.event_type = 'state_transition' AND e.from_state_id IS NOT NULL
    GROUP BY e.from_state_id, e.to_state_id
"""

_REACHED = """
    SELECT e.to_state_id, count(DISTINCT e.workflow_data_id) AS n
    FROM app.f_industry_workflow_events e
    JOIN app.d_industry_workflow_graph_data d ON d.id = e.workflow_data_id
    WHERE d.template_code = :code AND d.template_version = :version AND e.event_type = 'state_transition'
    GROUP BY e.to_state_id
"""

_STARTED = """
    SELECT count(*) FROM app.d_industry_workflow_graph_data WHERE template_code = :code AND template_version = :version
"""


async def recorded(
    conn: AsyncConnection, code: str, version: int
) -> tuple[dict[tuple[int, int], int], dict[int, int], int]:
    """The version's recorded transitions per (from, to), instances reaching each state, and started."""
    params: dict[str, Any] = {"code": code, "version": version}
    taken = {(r.from_state_id, r.to_state_id): int(r.n) for r in await conn.execute(text(_TAKEN), params)}
    reached = {r.to_state_id: int(r.n) for r in await conn.execute(text(_REACHED), params)}
    started = int((await conn.execute(text(_STARTED), params)).scalar() or 0)
    return taken, reached, started
