"""What one run of the step interpreter holds, read by every part of the walk: declared once here so
each part (workflows/steps/bookkeeping.py, scope.py, calls.py, waits.py) is typed against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.agents.registry import AgentSpec
    from core.platform import search_attributes as sa
    from core.platform.pauses import PauseInfo
    from core.steps.contracts import (
        DryStep,
        ExternalEvent,
        LiveState,
        ResumeState,
        RunInput,
        TaskOpen,
        TaskOutcome,
    )
    from core.steps.definition import StepWorkflowDefinition, visible

from workflows.steps.attempts import StepFailed

_BOOKKEEPING = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
DEFAULT_STEP_TIMEOUT_MS = 30_000
_MARGIN = timedelta(seconds=10)  # an activity's own limit is the step's; Temporal's is a little longer
MCP_ACTIVITY = "tool.mcp"
POLICY_ACTIVITY = "tool.policy"  # the approval policy alone (activities/steps/tools.py: StepToolActivities.policy)


@dataclass
class OpenTask:
    opened: TaskOpen
    escalated: bool = False


@dataclass
class Frame:
    """Where a list of steps runs: the prefix of their record paths, whether it is the top-level list
    (whose steps the search attributes follow), and inside a foreach iteration its own variables (its
    item, and its steps' outputs, which stay out of the run-wide variables)."""

    prefix: str = ""
    local: dict[str, Any] | None = None
    top: bool = True

    def inner(self) -> Frame:
        return Frame(prefix=self.prefix, local=self.local, top=False)


def _outputs(definition: StepWorkflowDefinition, state: ResumeState) -> dict[str, Any]:
    return {
        step.variable: state.variables[step.name] for step in visible(definition.steps) if step.name in state.variables
    }


class RunState:
    """The run's state; StepWorkflowRun sets it in ``__init__`` and at the start of ``run``."""

    _live: LiveState
    _agents: dict[str, AgentSpec]
    _names: dict[str, str]
    _carried_bytes: int | None
    _events: list[ExternalEvent]
    _tasks: dict[str, OpenTask]
    _decisions: dict[str, TaskOutcome]
    _event_ids: set[str]
    _data: RunInput
    _definition: StepWorkflowDefinition
    _state: ResumeState
    _paused: PauseInfo | None
    _ended: bool
    _dry_steps: list[DryStep] | None  # a dry run's steps (None: a real run)
    _dry_served: dict[str, Literal["record", "stub", "none", "evaluated"]]  # where a dry step's output came from
    _dry_taken: dict[str, Literal["then", "else"]]  # the arm each branch of a dry run took

    def _served(self, path: str, kind: str) -> Any:
        """A dry run's answer for a step with an effect: its recorded output, its recorded failure, or the
        stub named in the request; a step with none of them fails (the report says to give a stub)."""
        plan = self._data.dry_run
        assert plan is not None
        if path in plan.recorded:
            self._dry_served[path] = "record"
            return plan.recorded[path]
        if path in plan.stubs:
            self._dry_served[path] = "stub"
            return plan.stubs[path]
        self._dry_served[path] = "none"
        if path in plan.failed:
            raise StepFailed(f"(recorded) {plan.failed[path]}")
        raise StepFailed(f"dry run: no recorded output for '{path}' ({kind}); name a stub output for it")

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._data.history_limit or info.is_continue_as_new_suggested()

    @staticmethod
    def _lineage() -> list[str]:
        return list(workflow.info().typed_search_attributes.get(sa.STEP_WORKFLOW) or [])

    @staticmethod
    async def _local(activity: Any, arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_BOOKKEEPING
        )
