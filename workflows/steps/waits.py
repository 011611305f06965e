"""Waits of the step interpreter: for an outside event (wait_event) and for a person (human_task, and
an escalation's question), each a workflow condition with its time-out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.steps.records import StepRunActivities
    from core.people.directory import Distribution
    from core.steps.contracts import (
        ExternalEvent,
        TaskChange,
        TaskKind,
        TaskOpen,
        TaskOutcome,
        WaitInput,
    )
    from core.steps.definition import Step
    from core.steps.references import MissingReference, resolve
    from core.steps.starting import execution_id_for

from workflows.steps.attempts import StepFailed
from workflows.steps.calls import Calls
from workflows.steps.run_state import OpenTask


class Waits(Calls):
    """Waits for outside events and for people in a run (a part of StepWorkflowRun)."""

    async def _wait_event(self, step: Step, scope: dict[str, Any], path: str) -> dict[str, Any]:
        """Wait for an event of the source with the key (and, with a condition, one it holds for; the
        condition sees the event's body as ``event``). Registered in workflow_event_waits while waiting,
        so the outbox's delivery knows where to signal."""
        wait = step.wait_event
        assert wait is not None
        try:
            key = resolve(wait.key, scope)
        except MissingReference as exc:
            raise StepFailed(f"{exc}") from exc
        key = key if isinstance(key, str) else json.dumps(key, default=str)
        registration = WaitInput(
            execution_id=self._data.execution_id,
            path=path,
            temporal_workflow_id=workflow.info().workflow_id,
            source=wait.source,
            key=key,
        )
        seen: set[str] = set()

        def fresh() -> list[ExternalEvent]:
            return [e for e in self._events if e.event_id not in seen and e.source == wait.source and e.key == key]

        deadline = workflow.now() + timedelta(milliseconds=wait.timeout_ms)
        await self._local(StepRunActivities.wait_begin, registration)
        try:
            while True:
                for event in fresh():
                    seen.add(event.event_id)
                    if wait.condition is None or await self._holds(wait.condition, {**scope, "event": event.payload}):
                        return event.model_dump(mode="json")
                remaining = deadline - workflow.now()
                self._live.waiting_until = deadline
                try:
                    if remaining.total_seconds() <= 0:
                        raise TimeoutError
                    await workflow.wait_condition(lambda: bool(fresh()), timeout=remaining)
                except TimeoutError as exc:
                    if self._paused is not None:  # fell due while paused: acts on resume, unless an event came
                        await workflow.wait_condition(lambda: self._paused is None)
                        if fresh():
                            continue
                    raise StepFailed(
                        f"no '{wait.source}' event with key '{key}'"
                        + (" that its condition holds for" if wait.condition else "")
                        + f" arrived within {wait.timeout_ms} ms"
                    ) from exc
                finally:
                    self._live.waiting_until = None
        finally:
            await self._local(StepRunActivities.wait_end, registration)

    async def _human_task(self, step: Step, scope: dict[str, Any], path: str) -> dict[str, Any]:
        """A task in the assignee's inbox; after ``timeoutMs`` a reminder, after the escalation's
        ``timeoutMs`` (from the start) the escalation target is told and may decide too."""
        task = step.human_task
        assert task is not None
        try:
            title = resolve(task.title, scope) if task.title else f"{self._data.workflow}: {step.name}"
            description = resolve(task.description, scope) if task.description else None
        except MissingReference as exc:
            raise StepFailed(f"{exc}") from exc
        start = workflow.now()
        remind_at = start + timedelta(milliseconds=task.timeout_ms)
        escalation = task.escalation
        escalate_at = start + timedelta(milliseconds=escalation.timeout_ms) if escalation else None
        decision = await self._ask(
            path,
            "task",
            str(title),
            str(description) if description is not None else None,
            task.assignee,
            escalate_to=escalation.escalate_to if escalation else None,
            form=task.form,
            remind_at=remind_at,
            escalate_at=escalate_at,
            distribute=task.distribute,
        )
        return {
            "approved": decision.action == "approve",
            "decision": decision.action,
            "comment": decision.comment,
            "actor": decision.actor,
            "fields": decision.fields,
            "decided_ts": decision.decided_ts.isoformat(),
        }

    async def _ask(
        self,
        path: str,
        kind: TaskKind,
        title: str,
        description: str | None,
        assignee: str,
        *,
        escalate_to: str | None = None,
        form: dict[str, Any] | None = None,
        remind_at: datetime | None = None,
        escalate_at: datetime | None = None,
        distribute: Distribution | None = None,
    ) -> TaskOutcome:
        """Open a task, remind and escalate on workflow timers (none without their times), and wait for
        its decision."""
        opened = TaskOpen(
            task_id=str(execution_id_for("task", self._data.execution_id, path)),
            execution_id=self._data.execution_id,
            path=path,
            workflow=self._data.workflow,
            temporal_workflow_id=workflow.info().workflow_id,
            kind=kind,
            title=title,
            description=description,
            assignee=assignee,
            escalate_to=escalate_to,
            form=form,
            remind_at=remind_at,
            escalate_at=escalate_at,
            distribute=distribute,
        )
        assigned = await self._local(StepRunActivities.task_open, opened)
        if assigned is not None:  # distributed, or held by the assignee's delegate (core/people)
            opened = opened.model_copy(update={"assignee": assigned.assignee, "on_behalf_of": assigned.on_behalf_of})
        self._tasks[path] = OpenTask(opened=opened)
        decided = lambda: path in self._decisions  # noqa: E731
        try:
            for when, change in ((remind_at, "reminded"), (escalate_at, "escalated")):
                if when is None:
                    continue
                self._live.waiting_until = when
                if await self._until(decided, when):
                    break
                if self._paused is not None:  # fell due while paused: acts on resume, unless decided by then
                    await workflow.wait_condition(lambda: self._paused is None)
                    if decided():
                        break
                if path in self._tasks and change == "escalated":
                    self._tasks[path].escalated = True
                await self._local(
                    StepRunActivities.task_change,
                    TaskChange(task_id=opened.task_id, change=change, ts=workflow.now()),
                )
            self._live.waiting_until = None
            await workflow.wait_condition(decided)
        finally:
            if path in self._tasks:  # the run was cancelled or timed out while the task was open
                del self._tasks[path]
                await self._local(
                    StepRunActivities.task_change,
                    TaskChange(task_id=opened.task_id, change="cancelled", ts=workflow.now()),
                )
        return self._decisions.pop(path)

    @staticmethod
    async def _until(condition: Any, when: Any) -> bool:
        """Wait for the condition until ``when``; whether it held."""
        remaining = when - workflow.now()
        if remaining.total_seconds() > 0:
            try:
                await workflow.wait_condition(condition, timeout=remaining)
            except TimeoutError:
                pass
        return bool(condition())
