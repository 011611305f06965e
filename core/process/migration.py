"""Migrating running process instances to another template version: the plan, and the one rule that
decides, for an instance standing in a state, where it goes and what happens to its open approval,
its deadline clock and its entity. Pure (no I/O): the preview (api/commands/migrations.py) runs it
over the projection, and the instance's workflow runs it again in its ``migrate`` update's validator
against its current state, so an instance that moved on since the preview is refused, not corrupted.

The defaults, written down (docs/concepts/change-while-running.md says the same):
- a state maps to the target state with the same id, else the one with the same name;
- an open approval is carried over (its decisions and request time kept, the target gate's roles and
  time-out applied) when the target state has a gate; when it has none, the instance is refused;
- the deadline clock keeps running from when the instance entered the state, against the target
  state's ``avg_duration_days``;
- the state's entity keeps its status.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from core.platform.contracts import JsonUuid, RequestModel, RequestPart
from core.process.contracts import PendingApproval, StateId, StateNode, TemplateSnapshot, WorkflowGraph

MAX_MIGRATION_INSTANCES = 10_000  # one plan's instances; more: split the plan by filter

RefusalCode = Literal[
    "not_on_source_version",
    "not_active",
    "unmapped_state",
    "unknown_target",
    "terminal_target",
    "stuck",
    "gate_missing",
]


class StateMapping(RequestPart):
    from_state_id: StateId
    to_state_id: StateId


class MigrationRules(RequestPart):
    """What happens to an instance's open approval, deadline clock and entity (defaults in the module doc)."""

    open_approval: Literal["carry", "restart", "discard"] = Field(
        default="carry",
        description="carry: kept with its decisions under the target gate (refused when the target state has no "
        "gate); restart: a new request at the target gate; discard: withdrawn when the target has no gate",
    )
    deadline: Literal["keep", "restart"] = Field(
        default="keep",
        description="keep: the clock runs from when the instance entered the state; restart: from the migration",
    )
    entity: Literal["keep", "target_status"] = Field(
        default="keep",
        description="keep: the entity keeps its status; target_status: it takes the target state's entity_status",
    )


class MigrationFilter(RequestPart):
    """Which instances of the source version the plan takes (all active ones by default)."""

    state_ids: list[StateId] | None = Field(default=None, max_length=200)
    min_age_days: float | None = Field(default=None, ge=0, le=3650, description="started at least this long ago")
    max_age_days: float | None = Field(default=None, ge=0, le=3650, description="started at most this long ago")
    root_entity_id: JsonUuid | None = None


class MigrationPlan(RequestModel):
    template_code: str = Field(min_length=1, max_length=50)
    from_version: int = Field(ge=1, le=1_000_000)
    to_version: int = Field(ge=1, le=1_000_000)
    mapping: list[StateMapping] = Field(
        default_factory=list, max_length=200, description="Overrides of the default mapping (same id, else same name)"
    )
    filter: MigrationFilter = Field(default_factory=MigrationFilter)
    rules: MigrationRules = Field(default_factory=MigrationRules)


class MigrationCreate(MigrationPlan):
    batch_size: int = Field(default=20, ge=1, le=200, description="Instances sent the update per batch")
    pause_ms: int = Field(default=200, ge=0, le=60_000, description="Wait between batches (bounds the rate)")


class MigrateRequest(BaseModel):
    """The ``migrate`` update an instance's workflow takes: the plan's rules and the target version."""

    migration_id: str
    actor: str
    from_version: int
    mapping: list[StateMapping]
    rules: MigrationRules
    target: TemplateSnapshot


class Refusal(BaseModel):
    code: RefusalCode
    message: str


@dataclass(frozen=True)
class Move:
    """Where an instance in one state goes, and what happens to its approval, deadline and entity."""

    target: StateNode
    approval: Literal["none", "carried", "requested", "withdrawn", "kept_approved"]


def target_state(state: StateNode, mapping: list[StateMapping], graph: WorkflowGraph) -> StateNode | Refusal:
    by_id = {s.id: s for s in graph.states}
    override = next((m.to_state_id for m in mapping if m.from_state_id == state.id), None)
    if override is not None:
        found = by_id.get(override)
        if found is None:
            return Refusal(
                code="unknown_target",
                message=f"the mapping sends state {state.id} to {override}, which the target version does not have",
            )
        return found
    if state.id in by_id and by_id[state.id].name == state.name:
        return by_id[state.id]
    named = next((s for s in graph.states if s.name == state.name), None)
    if named is not None:
        return named
    if state.id in by_id:
        return by_id[state.id]
    return Refusal(
        code="unmapped_state",
        message=f"state {state.id} ('{state.name}') has no state of the same id or name in the target version; "
        "map it in the plan",
    )


def reaches_success(graph: WorkflowGraph, state_id: int) -> bool:
    by_id = {s.id: s for s in graph.states}
    seen, queue = {state_id}, deque([state_id])
    while queue:
        state = by_id[queue.popleft()]
        if state.terminal_flag and state.success:
            return True
        for child in state.child_ids:
            if child not in seen and child in by_id:
                seen.add(child)
                queue.append(child)
    return False


def move(
    state: StateNode,
    approval: PendingApproval | None,
    graph: WorkflowGraph,
    mapping: list[StateMapping],
    rules: MigrationRules,
) -> Move | Refusal:
    """The one rule: where an active instance in ``state`` (with ``approval``) goes in ``graph``."""
    target = target_state(state, mapping, graph)
    if isinstance(target, Refusal):
        return target
    label = f"target state {target.id} ('{target.name}')"
    if target.terminal_flag:
        return Refusal(code="terminal_target", message=f"{label} is terminal: end the instance instead of migrating it")
    if not reaches_success(graph, target.id):
        return Refusal(code="stuck", message=f"{label} cannot reach a successful terminal state in the target version")
    open_ = approval is not None and approval.status != "approved"
    if target.approval is None:
        if open_ and rules.open_approval == "carry":
            return Refusal(
                code="gate_missing",
                message=f"an approval is open and {label} has no approval gate; use open_approval 'discard' or "
                "'restart' to let it go",
            )
        return Move(target, "withdrawn" if approval is not None else "none")
    if approval is None or rules.open_approval != "carry":
        return Move(target, "requested")
    return Move(target, "kept_approved" if approval.status == "approved" else "carried")


def approval_after(found: Move, approval: PendingApproval | None, now: datetime) -> PendingApproval | None:
    """The instance's approval once it stands in the target state."""
    gate = found.target.approval
    if gate is None:
        return None
    if found.approval in ("carried", "kept_approved") and approval is not None:
        timeout_at = approval.requested_ts + timedelta(seconds=gate.timeout_seconds) if gate.timeout_seconds else None
        return approval.model_copy(update={"state_id": found.target.id, "roles": gate.roles, "timeout_at": timeout_at})
    timeout_at = now + timedelta(seconds=gate.timeout_seconds) if gate.timeout_seconds else None
    return PendingApproval(
        state_id=found.target.id, status="pending", roles=gate.roles, requested_ts=now, timeout_at=timeout_at
    )


def deadline_after(target: StateNode, entered: datetime, now: datetime, rules: MigrationRules) -> datetime | None:
    """When the target state's deadline alert falls due for an instance that entered its state at
    ``entered`` (None: the target state has no expected duration)."""
    if target.avg_duration_days is None or target.terminal_flag:
        return None
    start = entered if rules.deadline == "keep" else now
    return start + timedelta(days=target.avg_duration_days)


class PreviewItem(BaseModel):
    instance_id: str
    from_state_id: int
    from_state_name: str
    to_state_id: int | None = None
    to_state_name: str | None = None
    outcome: Literal["migrate", "refused"]
    refusal: Refusal | None = None
    approval: str = Field(
        description="What happens to its approval: none, carried, requested, withdrawn, kept_approved"
    )
    deadline_at: datetime | None = Field(default=None, description="When the target state's deadline alert is due")
    entity: str = Field(description="What happens to the state's entity")


class MigrationPreview(BaseModel):
    template_code: str
    from_version: int
    to_version: int
    totals: dict[str, int] = Field(description="Instances by outcome: migrate, and refused:<reason code>")
    items: list[PreviewItem]
    truncated: bool = Field(default=False, description="More instances matched than one plan takes")


class MigrationPublic(BaseModel):
    id: str
    template_code: str
    from_version: int
    to_version: int
    plan: dict[str, object]
    status: str
    created_by: str
    created_ts: datetime
    completed_ts: datetime | None
    totals: dict[str, int]


class MigrationItemPublic(BaseModel):
    instance_id: str
    from_state_id: int
    to_state_id: int | None
    outcome: str
    message: str | None
    updated_ts: datetime


class MigrationRunInput(BaseModel):
    """The batch workflow's input: which migration, and how fast."""

    migration_id: str
    batch_size: int
    pause_ms: int


class BatchResult(BaseModel):
    done: int
    remaining: int


class MigrateRecordInput(BaseModel):
    """What the instance's ``process.migrate`` local activity writes, in one transaction."""

    instance_id: str
    seq: int
    ts: datetime
    actor: str
    migration_id: str
    from_head_id: str
    from_version: int
    to_head_id: str
    to_version: int
    from_state_id: int
    to_state: StateNode
    pending_approval: PendingApproval | None
    entity_id: str | None
    entity_status: str | None
    payload: dict[str, object]
