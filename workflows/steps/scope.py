"""Variable scope of the step interpreter: what a step can see (input, context, earlier outputs), the
run-wide outputs it carries (bounded), and conditions (a reference's truthiness, or CEL in the
evaluator's activity)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.steps.records import StepRunActivities
    from core.steps.contracts import (
        MAX_RUN_OUTPUT_BYTES,
        ConditionInput,
        json_size,
    )
    from core.steps.definition import Step, visible
    from core.steps.references import REFERENCE, MissingReference, encode_url_value, lookup, resolve, truthy

from workflows.steps.attempts import StepFailed
from workflows.steps.run_state import Frame, RunState


def _resolve(step: Step, scope: dict[str, Any]) -> dict[str, Any]:
    if step.tool == "http.request" and "url" in step.params:
        rest = {key: value for key, value in step.params.items() if key != "url"}
        return {**resolve(rest, scope), "url": resolve(step.params["url"], scope, encode_url_value)}
    resolved: dict[str, Any] = resolve(step.params, scope)
    return resolved


class Variables(RunState):
    """The variable scope and conditions of a run (a part of StepWorkflowRun)."""

    def _scope(self, frame: Frame) -> dict[str, Any]:
        """What references and conditions see: input, context, each finished step's output under its name
        and its ``assign``, and inside a foreach iteration its item and its own steps' outputs."""
        scope: dict[str, Any] = {"input": self._data.input, "context": self._data.context}
        for name, variable in self._names.items():
            if name in self._state.variables:
                scope[name] = self._state.variables[name]
                scope[variable] = self._state.variables[name]
        if frame.local:
            scope.update(frame.local)
        return scope

    def _carry(self, path: str, output: Any) -> None:
        """Count a run-wide output against MAX_RUN_OUTPUT_BYTES: the run carries its outputs (its result,
        its continue-as-new input), and Temporal refuses a payload past 2 MB."""
        if self._carried_bytes is None:
            self._carried_bytes = json_size(self._state.variables)
        size = json_size(output)
        if self._carried_bytes + size > MAX_RUN_OUTPUT_BYTES:
            raise StepFailed(
                f"its output ({size} bytes) would bring the outputs this run carries to "
                f"{self._carried_bytes + size} bytes; a run may carry at most {MAX_RUN_OUTPUT_BYTES}. Keep large "
                "data in entities and pass their ids"
            )
        self._carried_bytes += size

    def _store(self, frame: Frame, step: Step, output: Any) -> None:
        if frame.local is None:
            self._state.variables[step.name] = output
        else:
            frame.local[step.name] = output
            frame.local[step.variable] = output

    def _collect(self, steps: list[Step], frame: Frame) -> dict[str, Any]:
        """The outputs of a list's steps (nested ones too, but not a foreach's insides), by variable."""
        found: dict[str, Any] = {}
        for step in visible(steps):
            if frame.local is not None and step.name in frame.local:
                found[step.variable] = frame.local[step.name]
            elif frame.local is None and step.name in self._state.variables:
                found[step.variable] = self._state.variables[step.name]
        return found

    async def _holds(self, condition: str, scope: dict[str, Any]) -> bool:
        whole = REFERENCE.fullmatch(condition.strip())
        if whole:  # the seed's existence check: a reference to nothing is false
            try:
                return truthy(lookup(whole.group(1), scope))
            except MissingReference:
                return False
        result = await self._local(StepRunActivities.condition, ConditionInput(expression=condition, variables=scope))
        if result.error is not None:
            raise StepFailed(f"its if could not be evaluated: {result.error}")
        return result.value
