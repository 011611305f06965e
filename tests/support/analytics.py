"""For analytics tests: process instances written at fixed times through the real state-entry activity,
and the independent recomputation's percentile."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.process.state_entry import ProcessActivities
from core.process.contracts import ApprovalRecordInput, EnterStateInput, HistoryEntry, StateNode, TemplateRef


async def write_instances(
    engine: AsyncEngine,
    code: str,
    head_id: str,
    graph: list[StateNode],
    scripts: list[tuple[float, list[tuple[int, float]], float | None]],
    t0: datetime,
) -> None:
    """Instances written by the real state-entry activity (in Temporal's ActivityEnvironment, on the real
    database) at fixed times: (start hour after t0, [(state, hours after start)], cancel hour or None).
    Every other write, every finish and every cancel is written twice, as a retry after the commit would."""
    states = {s.id: s for s in graph}
    activities = ProcessActivities(engine)
    env = ActivityEnvironment()
    ref = TemplateRef(head_id=head_id, code=code, version=1)
    for start_hour, steps, cancel_hour in scripts:
        instance = str(uuid.uuid4())
        started = t0 + timedelta(hours=start_hour)
        previous: int | None = None
        for seq, (state_id, hour) in enumerate(steps, start=1):
            state = states[state_id]
            ts = started + timedelta(hours=hour)
            data = EnterStateInput(
                instance_id=instance,
                workflow_id=f"analytics-{instance}",
                template=ref,
                seq=seq,
                ts=ts,
                actor="analyst",
                comment=None,
                from_state_id=previous,
                to_state=state,
                entity_id=None,
                entity_action=None,
                entity_name=None,
                entity_fields={},
                root_entity_id=None,
                root_entity_type=None,
                history_entry=HistoryEntry(from_=previous, to=state_id, ts=ts, actor="analyst"),
                created_entity=None,
                workflow_status="completed" if state.terminal_flag else "active",
                success=state.success if state.terminal_flag else None,
                pending_approval=None,
                started_ts=started,
            )
            for _ in range(2 if seq % 2 == 0 or state.terminal_flag else 1):  # retried after the commit
                await env.run(activities.enter_state, data)
            previous = state_id
        if cancel_hour is not None:
            cancel = ApprovalRecordInput(
                instance_id=instance,
                seq=len(steps) + 1,
                event_type="instance_cancelled",
                state_id=previous or 0,
                ts=started + timedelta(hours=cancel_hour),
                actor="analyst",
                comment="no longer needed",
                pending_approval=None,
                workflow_status="cancelled",
            )
            for _ in range(2):
                await env.run(activities.record_approval, cancel)


def percentile(values: list[float], q: float) -> float | None:
    """Postgres percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def close(a: float | None, b: float | None, tolerance: float = 0.01) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tolerance)
