"""Dry run of a changed template against recorded instances (pure: no I/O, no effect): each instance's
recorded transitions are replayed on the new graph, to say which would now be refused and where, and
which would end differently. api/commands/templates.py reads the instances and calls ``replay``."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.platform.contracts import RequestModel
from core.process.contracts import HistoryEntry, WorkflowGraph
from core.process.dag import start_state

Verdict = Literal["same", "refused", "ends_differently"]


class TemplateDryRunRequest(RequestModel):
    workflow_graph: WorkflowGraph
    last_n: int = Field(default=50, ge=1, le=500, description="How many of the latest version's instances")


class ReplayedInstance(BaseModel):
    instance_id: str
    workflow_status: str
    recorded_path: list[int] = Field(description="The states it went through, in order")
    verdict: Verdict
    refused_at: int | None = Field(default=None, description="Index in recorded_path of the first refused move")
    reason: str | None = None
    approvals_needed: list[int] = Field(
        default_factory=list, description="States it left that the new graph gates with an approval"
    )


class TemplateDryRun(BaseModel):
    template_code: str
    compared_version: int
    totals: dict[str, int]
    instances: list[ReplayedInstance]


def replay(
    instance_id: str,
    history: list[HistoryEntry],
    workflow_status: str,
    success: bool | None,
    graph: WorkflowGraph,
) -> ReplayedInstance:
    """Replay one instance's recorded moves on ``graph``."""
    states = {s.id: s for s in graph.states}
    path = [entry.to for entry in history]
    base: dict[str, Any] = {"instance_id": instance_id, "workflow_status": workflow_status, "recorded_path": path}
    if not path:
        return ReplayedInstance(**base, verdict="same")
    start = start_state(graph)
    if path[0] != start.id:
        reason = f"it started in state {path[0]}; the new version starts in {start.id} ('{start.name}')"
        return ReplayedInstance(**base, verdict="refused", refused_at=0, reason=reason)
    gated: list[int] = []
    for index in range(1, len(path)):
        before, after = states[path[index - 1]], path[index]
        if after not in states:
            reason = f"state {after} does not exist in the new version"
            return ReplayedInstance(**base, verdict="refused", refused_at=index, reason=reason, approvals_needed=gated)
        if after not in before.child_ids:
            allowed = ", ".join(str(c) for c in before.child_ids) or "none"
            reason = f"the new version has no transition {before.id} → {after} (from {before.id}: {allowed})"
            return ReplayedInstance(**base, verdict="refused", refused_at=index, reason=reason, approvals_needed=gated)
        if before.approval is not None:
            gated.append(before.id)
    last = states[path[-1]]
    if workflow_status == "completed":
        if not last.terminal_flag:
            reason = f"it ended in state {last.id} ('{last.name}'), which is not terminal in the new version"
            return ReplayedInstance(**base, verdict="ends_differently", reason=reason, approvals_needed=gated)
        if bool(last.success) != bool(success):
            now = "success" if last.success else "failure"
            reason = f"it ended in state {last.id}, which the new version counts as a {now}"
            return ReplayedInstance(**base, verdict="ends_differently", reason=reason, approvals_needed=gated)
    elif workflow_status == "active" and last.terminal_flag:
        reason = f"it is active in state {last.id}, which is terminal in the new version (it would have ended)"
        return ReplayedInstance(**base, verdict="ends_differently", reason=reason, approvals_needed=gated)
    return ReplayedInstance(**base, verdict="same", approvals_needed=gated)


def summary(code: str, version: int, instances: list[ReplayedInstance]) -> TemplateDryRun:
    totals = Counter(i.verdict for i in instances)
    return TemplateDryRun(
        template_code=code, compared_version=version, totals=dict(sorted(totals.items())), instances=instances
    )
