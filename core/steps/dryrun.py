"""Dry run of a changed step workflow against recorded executions: the new definition runs in the real
interpreter (a ``StepWorkflow`` on the Temporal server) with ``RunInput.dry_run`` set, so no tool is
called, no wait is waited, no record is written: each step with an effect is answered with the recorded
output of the step at the same path, or with a stub named in the request. This module holds the
request, the plan built from the records, and the comparison of the run with the recorded one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.platform.contracts import RequestModel
from core.steps.contracts import DryRunPlan, DryStep, RunResult, StepExecutionPublic, StepPublic
from core.steps.definition import StepWorkflowDefinition

MAX_DRY_RUNS = 20


class StepDryRunRequest(RequestModel):
    definition: StepWorkflowDefinition
    last_n: int = Field(default=10, ge=1, le=MAX_DRY_RUNS, description="How many recorded executions to shadow")
    stubs: dict[str, Any] = Field(
        default_factory=dict,
        max_length=200,
        description='Outputs for steps that have no record (new steps), by path, e.g. {"notify": {"ok": true}}',
    )


class BranchChange(BaseModel):
    path: str
    recorded: str
    now: str


class RunComparison(BaseModel):
    execution_id: str
    recorded_status: str
    dry_status: str
    status_changed: bool
    output_changed: bool
    steps_added: list[str] = Field(description="Steps the new definition runs that the recorded run did not")
    steps_removed: list[str] = Field(description="Recorded steps the new definition does not run")
    skipped_differently: list[str] = Field(description="Steps skipped in one run and not in the other")
    branches_differently: list[BranchChange]
    needs_stub: list[str] = Field(description="Steps with an effect but no record or stub: the dry run failed there")
    error: str | None = None
    steps: list[DryStep]


class StepDryRun(BaseModel):
    workflow: str
    compared_version: int | None
    changed: int = Field(description="Runs whose steps, branches, status or output would differ")
    runs: list[RunComparison]


def plan_from(steps: list[StepPublic], stubs: dict[str, Any]) -> DryRunPlan:
    return DryRunPlan(
        recorded={s.path: s.output for s in steps if s.status == "completed"},
        failed={s.path: s.error or "failed" for s in steps if s.status == "failed"},
        stubs=stubs,
    )


def compare(recorded: StepExecutionPublic, steps: list[StepPublic], result: RunResult) -> RunComparison:
    dry = result.dry_steps or []
    before = {s.path: s for s in steps}
    after = {s.path: s for s in dry}
    skipped = [
        p for p in before.keys() & after.keys() if (before[p].status == "skipped") != (after[p].status == "skipped")
    ]
    branches = [
        BranchChange(path=p, recorded=str(taken[0]), now=str(taken[1]))
        for p in before.keys() & after.keys()
        if (taken := (_taken(before[p].output), after[p].taken or _taken(after[p].output)))[0] is not None
        and taken[1] is not None
        and taken[0] != taken[1]
    ]
    return RunComparison(
        execution_id=str(recorded.id),
        recorded_status=recorded.status,
        dry_status=result.status,
        status_changed=recorded.status != result.status,
        output_changed=(recorded.output or {}) != result.output,
        steps_added=sorted(after.keys() - before.keys()),
        steps_removed=sorted(before.keys() - after.keys()),
        skipped_differently=sorted(skipped),
        branches_differently=sorted(branches, key=lambda b: b.path),
        needs_stub=[s.path for s in dry if s.served == "none" and s.status == "failed" and s.path not in before],
        error=result.error,
        steps=dry,
    )


def _taken(output: Any) -> Any:
    """Which arm a branch step took ("then"/"else"), from its output; None for other steps."""
    return output.get("taken") if isinstance(output, dict) else None


def changed(run: RunComparison) -> bool:
    return bool(
        run.status_changed
        or run.output_changed
        or run.steps_added
        or run.steps_removed
        or run.skipped_differently
        or run.branches_differently
    )
