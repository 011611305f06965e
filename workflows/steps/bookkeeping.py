"""The step interpreter's records: the steps it records itself (skipped, failed, agent and child
calls) and the execution's end."""

from __future__ import annotations

from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.steps.records import StepRunActivities
    from core.platform import search_attributes as sa
    from core.steps.contracts import (
        DryStep,
        ExecutionStatus,
        FinishInput,
        RunResult,
        StepRecordInput,
    )
    from core.steps.definition import Step

from workflows.steps.attempts import StepFailed
from workflows.steps.run_state import _outputs
from workflows.steps.scope import Variables


class Bookkeeping(Variables):
    """The records and the end of a run (a part of StepWorkflowRun)."""

    async def _record_failure(self, step: Step, position: int, failed: StepFailed, started: Any, path: str) -> None:
        await self._record(
            step,
            position,
            "failed",
            started=started,
            params=failed.params,
            error=failed.message,
            retry_count=failed.retry_count,
            path=path,
        )

    async def _record_completed(
        self, step: Step, position: int, params: Any, output: Any, attempt: int, started: Any, path: str
    ) -> None:
        """A call the interpreter makes itself (agent.call, workflow.run) that completed on ``attempt``."""
        await self._record(
            step,
            position,
            "completed",
            started=started,
            params=params,
            output=output,
            retry_count=attempt - 1,
            path=path,
        )

    async def _record(
        self,
        step: Step,
        position: int,
        status: Literal["completed", "failed", "skipped"],
        *,
        started: Any,
        params: Any = None,
        output: Any = None,
        error: str | None = None,
        retry_count: int = 0,
        path: str | None = None,
    ) -> None:
        if self._dry_steps is not None:
            where = path or step.name
            served, taken = self._dry_served.pop(where, "evaluated"), self._dry_taken.get(where)
            self._dry_steps.append(
                DryStep(path=where, status=status, output=output, error=error, served=served, taken=taken)
            )
            return
        await self._local(
            StepRunActivities.record,
            StepRecordInput(
                execution_id=self._data.execution_id,
                path=path or step.name,
                position=position,
                name=step.name,
                tool=step.kind,
                status=status,
                input=params,
                output=output,
                error=error,
                retry_count=retry_count,
                started_ts=started,
            ),
        )

    async def _end(
        self,
        status: ExecutionStatus,
        error: str | None,
    ) -> RunResult:
        output = _outputs(self._definition, self._state)
        self._ended = True
        result = RunResult(
            execution_id=self._data.execution_id,
            status=status,
            output=output,
            error=error,
            step_errors=self._state.step_errors,
            dry_steps=self._dry_steps,
        )
        if self._dry_steps is not None:
            return result  # a dry run records nothing
        await self._local(
            StepRunActivities.finish,
            FinishInput(
                execution_id=self._data.execution_id,
                status=status,
                output=output,
                error=error,
                step_errors=self._state.step_errors,
            ),
        )
        if self._data.search_attributes:
            workflow.upsert_search_attributes([sa.EXECUTION_STATUS.value_set(status)])
        self._live.current_step = None
        return result
