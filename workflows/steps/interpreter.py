"""The step interpreter: one workflow (``step-execution-<id>``) walks one stored version of a step
workflow, in the shape of samples-python's DSL sample: the definition is validated before it is stored
and walked here.

Each step: its ``if`` (a reference's truthiness here; a CEL expression in the condition evaluator), its
params resolved against input, context and earlier outputs (core/steps/references.py), then one
activity per attempt. Retries are the step's own (``retry`` or ``config.maxRetries``): the interpreter
waits on a workflow timer between attempts (fixed, linear or exponential), so a lost worker's attempt
(which Temporal retries) never uses one up, and every wait is visible in the history. ``timeoutMs`` of
the config bounds the whole run (across continue-as-new), a step's bounds each attempt.

Records: the tools record their completed steps themselves (with their effects, exactly once); the
interpreter records skipped and failed steps, agent.call and workflow.run steps, and the execution's
begin and end. ``live`` (a query) says where a running execution is.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.agents.llm import LLM_RETRY, LlmActivities
    from activities.steps.records import AgentFound, StepRunActivities
    from core.agents.registry import AgentSpec
    from core.agents.sessions import AgentCallInput, tokens_of_failed_call
    from core.platform import errors
    from core.platform import search_attributes as sa
    from core.platform.public_text import PublicText
    from core.platform.schemas import validation_error
    from core.steps.contracts import (
        EXTERNAL_EVENT_SIGNAL,
        MAX_RUN_OUTPUT_BYTES,
        TASK_ACTIONS,
        Compensable,
        ConditionInput,
        DefinitionRef,
        ExecutionStatus,
        ExternalEvent,
        FinishInput,
        LiveState,
        ResumeState,
        RunInput,
        RunResult,
        StepError,
        StepRecordInput,
        TaskChange,
        TaskDecisionRequest,
        TaskKind,
        TaskOpen,
        TaskOutcome,
        ToolCall,
        WaitInput,
        execution_workflow_id,
        json_size,
    )
    from core.steps.definition import Step, StepRetry, WorkflowDefinition, visible
    from core.steps.references import REFERENCE, MissingReference, encode_url_value, lookup, resolve, truthy
    from core.steps.starting import begin_input, execution_attributes, execution_id_for
    from core.steps.tools import (
        STEP_TOOLS,
        AgentCallOutput,
        AgentCallParams,
        McpCallOutput,
        WorkflowRunOutput,
        WorkflowRunParams,
        authored_secret_headers,
        infrastructure_retry,
    )

_BOOKKEEPING = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
DEFAULT_STEP_TIMEOUT_MS = 30_000
_MARGIN = timedelta(seconds=10)  # an activity's own limit is the step's; Temporal's is a little longer
MCP_ACTIVITY = "tool.mcp"


class AttemptFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class StepFailed(Exception):
    def __init__(
        self, message: str, retry_count: int = 0, params: Any = None, *, skipped: bool = False, aborted: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_count = retry_count
        self.params = params
        self.skipped = skipped  # an escalation's decision: record the error and go on
        self.aborted = aborted  # an escalation's decision: fail, unwinding the saga if there is one


class Compensate(Exception):
    """A step whose onError strategy is ``compensate`` failed for good: the saga unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def backoff(retry: StepRetry, attempts_made: int) -> timedelta:
    """The wait before the next attempt, after ``attempts_made`` failed ones."""
    initial = retry.initial_interval_ms
    if retry.backoff == "fixed":
        wait = initial
    elif retry.backoff == "linear":
        wait = initial * attempts_made
    else:
        wait = initial * 2 ** (attempts_made - 1)
    return timedelta(milliseconds=min(wait, retry.max_interval_ms))


def _failure(err: ActivityError | ChildWorkflowError) -> AttemptFailed:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        if cause.type == errors.STEP_FAILED.type:
            details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            return AttemptFailed(cause.message, retryable=bool(details.get("retryable", True)))
        if cause.type in (errors.LLM_REJECTED.type, errors.LLM_UNAVAILABLE.type):
            return AttemptFailed(cause.message, retryable=False)
        return AttemptFailed(cause.message, retryable=True)
    return AttemptFailed(f"{type(cause).__name__}: {cause}" if cause else str(err), retryable=True)


@workflow.defn(name="StepWorkflow")
class StepWorkflowRun:
    def __init__(self) -> None:
        self._live = LiveState()
        self._agents: dict[str, AgentSpec] = {}
        self._names: dict[str, str] = {}  # step name -> its variable, for steps whose outputs are run-wide
        self._carried_bytes: int | None = None  # JSON bytes of the run-wide outputs, counted from the first
        self._events: list[ExternalEvent] = []  # external events delivered to this run (wait_event steps)
        self._tasks: dict[str, OpenTask] = {}  # open human tasks by path
        self._decisions: dict[str, TaskOutcome] = {}
        self._event_ids: set[str] = set()

    @workflow.update
    async def decide_task(self, request: TaskDecisionRequest) -> TaskOutcome:
        """A person decides an open task (from the inbox): its assignee, its escalation target once it
        has escalated, or an admin (403 for anyone else); the decision is the step's output."""
        task = self._check_task(request)
        del self._tasks[request.path]  # taken at once: a concurrent second decision finds it gone
        now = workflow.now()
        outcome = TaskOutcome(
            task_id=task.opened.task_id,
            path=request.path,
            action=request.action,
            actor=request.actor,
            comment=request.comment,
            fields=request.fields,
            decided_ts=now,
        )
        await self._local(
            StepRunActivities.task_change,
            TaskChange(
                task_id=task.opened.task_id,
                change="decided",
                ts=now,
                decision=outcome.model_dump(mode="json"),
                actor=request.actor,
            ),
        )
        self._decisions[request.path] = outcome
        return outcome

    @decide_task.validator
    def _validate_task(self, request: TaskDecisionRequest) -> None:
        self._check_task(request)

    def _check_task(self, request: TaskDecisionRequest) -> OpenTask:
        task = self._tasks.get(request.path)
        if task is None:
            raise errors.NO_TASK_OPEN.error(f"no task is open at '{request.path}' (decided, or the run moved on)")
        later = task.opened.escalate_to
        deciders = [task.opened.assignee] + ([later] if task.escalated and later else [])
        if request.actor_role != "admin" and request.actor not in deciders and request.actor_role not in deciders:
            waiting = f" ({later} once it escalates)" if later and not task.escalated else ""
            raise errors.NOT_PERMITTED.error(f"this task is for {' or '.join(deciders)}{waiting}")
        allowed = TASK_ACTIONS[task.opened.kind]
        if request.action not in allowed:
            raise errors.INVALID_DECISION.error(f"this task takes {' or '.join(allowed)}, not '{request.action}'")
        if task.opened.form is not None and request.action == "approve":
            problem = validation_error(task.opened.form, request.fields)
            if problem is not None:
                raise errors.INVALID_DECISION.error(f"the fields do not match the task's form {problem}")
        return task

    @workflow.signal(name=EXTERNAL_EVENT_SIGNAL)
    def external_event(self, event: ExternalEvent) -> None:
        """An event for a wait_event step (activities/steps/events.py); a redelivered one is ignored."""
        if event.event_id not in self._event_ids:
            self._event_ids.add(event.event_id)
            self._events.append(event)

    @workflow.query
    def live(self) -> LiveState:
        return self._live

    @workflow.run
    async def run(self, data: RunInput) -> RunResult:
        definition = WorkflowDefinition.model_validate(data.definition)
        if data.resume is None or not data.resume.begun:
            await self._local(StepRunActivities.begin, begin_input(data))
            if data.resume is not None:
                data.resume.begun = True
        state = data.resume or ResumeState(position=0, variables={}, started_at=workflow.now())
        # One run per instance: its input, definition and state, read by every method of the walk.
        self._data, self._definition, self._state = data, definition, state
        self._live.steps_done, self._live.tokens_used = state.steps_done, state.tokens_used
        deadline = state.started_at + timedelta(milliseconds=definition.config.timeout_ms)
        remaining = max((deadline - workflow.now()).total_seconds(), 0.001)
        self._names = {step.name: step.variable for step in visible(definition.steps)}
        try:
            await asyncio.wait_for(self._walk(), timeout=remaining)
        except Compensate as saga:
            problem = await self._compensate()
            if problem is not None:
                return await self._end("failed", f"{saga.message}; {problem}")
            return await self._end("compensated", saga.message)
        except TimeoutError:
            where = f" (in step '{self._live.current_step}')" if self._live.current_step else ""
            message = f"the run exceeded its timeoutMs of {definition.config.timeout_ms} ms{where}"
            return await self._end("failed", message)
        except StepFailed as failed:
            return await self._end("failed", failed.message)
        except asyncio.CancelledError:
            await self._end("cancelled", "cancelled on request")
            raise
        return await self._end("completed", None)

    # ---------------------------------------------------------------- the walk

    async def _walk(self) -> None:
        steps = self._definition.steps
        if _is_graph(steps):  # a DAG runs in one go: no continue-as-new between its steps
            await self._graph(steps, Frame())
        else:
            first = self._state.position
            for position in range(first, len(steps)):
                self._state.position = position
                if position > first and self._history_full():
                    workflow.continue_as_new(self._data.model_copy(update={"resume": self._state}))
                await self._step(steps[position], position, Frame())
        self._state.position = len(steps)
        self._live.current_step = None

    async def _steps(self, steps: list[Step], frame: Frame) -> None:
        """A nested list: one after the other, or as the DAG its dependencies draw."""
        if _is_graph(steps):
            await self._graph(steps, frame)
            return
        for position, step in enumerate(steps):
            await self._step(step, position, frame)

    async def _graph(self, steps: list[Step], frame: Frame) -> None:
        """Each step starts when the steps it depends on have finished (without ``dependencies``: the one
        before it). Every task exists before any runs, so a step may wait for one written after it."""
        tasks: dict[str, asyncio.Task[None]] = {}

        async def run_one(position: int, step: Step) -> None:
            waits = step.dependencies if step.dependencies is not None else [steps[position - 1].name][:position]
            for name in waits:
                await tasks[name]
            await self._step(step, position, frame)

        for position, step in enumerate(steps):
            tasks[step.name] = asyncio.create_task(run_one(position, step))
        await _join(list(tasks.values()))

    async def _step(
        self,
        step: Step,
        position: int,
        frame: Frame,
    ) -> None:
        path = frame.prefix + step.name
        self._live.current_step, self._live.attempt = path, 0
        if frame.top and self._data.search_attributes:
            workflow.upsert_search_attributes([sa.CURRENT_STEP.value_set(step.name)])
        scope = self._scope(frame)
        started = workflow.now()
        try:
            if step.if_ is not None and not await self._holds(step.if_, scope):
                await self._record(step, position, "skipped", started=started, path=path)
                self._state.steps_done += 1
                return
            output = await self._escalating(step, position, scope, frame, path)
            if frame.local is None:
                self._carry(path, output)
        except StepFailed as failed:
            await self._record_failure(step, position, failed, started, path)
            self._state.steps_done += 1
            strategy = step.on_error.strategy if step.on_error else None
            if strategy == "skip" or failed.skipped or (strategy is None and self._definition.config.continue_on_error):
                self._state.step_errors.append(StepError(step=path, tool=step.kind, error=failed.message))
                return
            message = f"step '{path}' ({step.kind}) failed: {failed.message}"
            if strategy == "compensate" or (failed.aborted and self._state.compensable):
                raise Compensate(message) from failed
            raise StepFailed(message) from failed
        self._store(frame, step, output)
        self._state.steps_done += 1
        self._live.steps_done = self._state.steps_done
        if step.on_error is not None and step.on_error.compensation_step is not None:
            self._state.compensable.append(
                Compensable(path=path, step=step.name, compensation=step.on_error.compensation_step, output=output)
            )

    async def _escalating(
        self,
        step: Step,
        position: int,
        scope: dict[str, Any],
        frame: Frame,
        path: str,
    ) -> Any:
        """The step; with the ``escalate`` strategy, a failure for good opens a task for the escalation
        target offering retry (the step runs again), skip (recorded, the run goes on) or abort."""
        rounds = 0
        while True:
            try:
                return await self._scheduled(step, position, scope, frame, path)
            except StepFailed as failed:
                policy = step.on_error
                if policy is None or policy.strategy != "escalate" or policy.escalation_target is None:
                    raise
                rounds += 1
                decision = await self._ask(
                    f"{path}#escalation{rounds}",
                    "escalation",
                    f"{self._data.workflow}: step '{path}' failed",
                    failed.message,
                    policy.escalation_target,
                )
                if decision.action == "retry":
                    scope = self._scope(frame)
                    continue
                verdict = f"{decision.action} by {decision.actor} after an escalation"
                raise StepFailed(
                    f"{failed.message} ({verdict})",
                    failed.retry_count,
                    failed.params,
                    skipped=decision.action == "skip",
                    aborted=decision.action == "abort",
                ) from failed

    async def _scheduled(
        self,
        step: Step,
        position: int,
        scope: dict[str, Any],
        frame: Frame,
        path: str,
    ) -> Any:
        """The step once, or (with a schedule) run after run on a workflow timer until its ``until``
        holds or ``maxRuns`` is reached; each run is recorded as ``<path>@<n>``."""
        schedule = step.schedule
        if schedule is None:
            return await self._once(step, position, scope, frame, path)
        started = workflow.now()
        last: Any = None
        runs = 0
        for run in range(1, schedule.max_runs + 1):
            last = await self._once(step, position, scope, frame, f"{path}@{run}")
            runs = run
            if schedule.until is not None and await self._holds(schedule.until, {**scope, "last": last}):
                break
            if run < schedule.max_runs:
                wait = timedelta(milliseconds=schedule.every_ms)
                self._live.waiting_until = workflow.now() + wait
                await workflow.sleep(wait)
                self._live.waiting_until = None
            scope = self._scope(frame)
        output = {"runs": runs, "last": last}
        await self._record(step, position, "completed", started=started, output=output, path=path)
        return output

    async def _once(
        self,
        step: Step,
        position: int,
        scope: dict[str, Any],
        frame: Frame,
        path: str,
    ) -> Any:
        if step.tool is not None:
            return await self._attempts(step, position, scope, path)
        started = workflow.now()
        output: Any
        if step.parallel is not None:
            branches = step.parallel.branches
            await _join([asyncio.create_task(self._steps(b.steps, frame.inner())) for b in branches])
            output = {b.name: self._collect(b.steps, frame) for b in branches}
        elif step.branch is not None:
            taken = await self._holds(step.branch.condition, scope)
            arm = step.branch.then if taken else step.branch.else_
            await self._steps(arm, frame.inner())
            output = {"taken": "then" if taken else "else", **self._collect(arm, frame)}
        elif step.foreach is not None:
            output = await self._foreach(step, scope, frame, path)
        elif step.wait_event is not None:
            output = await self._wait_event(step, scope, path)
        elif step.human_task is not None:
            output = await self._human_task(step, scope, path)
        else:
            raise StepFailed(f"'{step.kind}' steps are not supported by this worker")
        await self._record(step, position, "completed", started=started, output=output, path=path)
        return output

    async def _foreach(
        self,
        step: Step,
        scope: dict[str, Any],
        frame: Frame,
        path: str,
    ) -> list[dict[str, Any]]:
        loop = step.foreach
        assert loop is not None
        try:
            items = resolve(loop.items, scope)
        except MissingReference as exc:
            raise StepFailed(f"{exc}") from exc
        if not isinstance(items, list):
            raise StepFailed(f"foreach items {loop.items} is a {type(items).__name__}, not a list")
        if len(items) > loop.max_items:
            raise StepFailed(f"foreach items has {len(items)} items, more than its maxItems of {loop.max_items}")
        slots = asyncio.Semaphore(loop.concurrency)
        frames = [
            Frame(
                prefix=f"{path}[{i}].", local={**(frame.local or {}), loop.as_: item, f"{loop.as_}_index": i}, top=False
            )
            for i, item in enumerate(items)
        ]

        async def iteration(inner: Frame) -> None:
            async with slots:
                await self._steps(loop.steps, inner)

        await _join([asyncio.create_task(iteration(inner)) for inner in frames])
        return [self._collect(loop.steps, inner) for inner in frames]

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
        )
        await self._local(StepRunActivities.task_open, opened)
        self._tasks[path] = OpenTask(opened=opened)
        decided = lambda: path in self._decisions  # noqa: E731
        try:
            for when, change in ((remind_at, "reminded"), (escalate_at, "escalated")):
                if when is None:
                    continue
                self._live.waiting_until = when
                if await self._until(decided, when):
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

    # ---------------------------------------------------------------- variables

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

    # ---------------------------------------------------------------- sagas

    async def _compensate(self) -> str | None:
        """Run the compensations of the completed steps, last completed first, each once (its record's
        path is ``compensate.<step path>``, so a repeated attempt finds it done). A compensation that
        fails is recorded and the others still run; the answer names the failures."""
        by_name = {step.name: step for step in self._definition.compensations}
        failures: list[str] = []
        for position, done in enumerate(reversed(self._state.compensable)):
            compensation = by_name[done.compensation]
            path = f"compensate.{done.path}"
            self._live.current_step = path
            scope = {**self._scope(Frame()), done.step: done.output, "compensated": done.output}
            started = workflow.now()
            try:
                await self._attempts(compensation, position, scope, path)
            except StepFailed as failed:
                await self._record_failure(compensation, position, failed, started, path)
                failures.append(f"compensation '{compensation.name}' of '{done.path}' failed: {failed.message}")
        self._live.current_step = None
        return "; ".join(failures) if failures else None

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._data.history_limit or info.is_continue_as_new_suggested()

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

    async def _attempts(
        self,
        step: Step,
        position: int,
        scope: dict[str, Any],
        path: str,
    ) -> Any:
        try:
            params = _resolve(step, scope)
        except MissingReference as exc:
            raise StepFailed(f"{exc}") from exc
        retry = _retry_of(step, self._definition)
        for attempt in range(1, retry.max_attempts + 1):
            self._live.attempt = attempt
            try:
                return await self._call(step, position, params, attempt, path)
            except AttemptFailed as failed:
                if not failed.retryable or attempt == retry.max_attempts:
                    tried = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise StepFailed(failed.message + tried, attempt - 1, params) from failed
                wait = backoff(retry, attempt)
                self._live.waiting_until = workflow.now() + wait
                await workflow.sleep(wait)
                self._live.waiting_until = None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call(
        self,
        step: Step,
        position: int,
        params: dict[str, Any],
        attempt: int,
        path: str,
    ) -> Any:
        tool = step.kind
        spec = STEP_TOOLS.get(tool)
        default_ms = int(spec.time_limit(None).total_seconds() * 1000) if spec else DEFAULT_STEP_TIMEOUT_MS
        timeout_ms = step.timeout_ms or default_ms
        if tool == "agent.call":
            return await self._agent_call(step, position, params, timeout_ms, attempt, path)
        if tool == "workflow.run":
            return await self._workflow_run(step, position, params, attempt, path)
        call = ToolCall(
            execution_id=self._data.execution_id,
            workflow=self._data.workflow,
            path=path,
            position=position,
            name=step.name,
            tool=tool,
            params=params,
            attempt=attempt,
            timeout_ms=timeout_ms,
            started_ts=workflow.now(),
            secret_headers=authored_secret_headers(tool, step.params),
        )
        activity_name, output_type = (spec.activity_name, spec.output) if spec else (MCP_ACTIVITY, McpCallOutput)
        try:
            result = await workflow.execute_activity(
                activity_name,
                call,
                result_type=output_type,
                start_to_close_timeout=timedelta(milliseconds=timeout_ms) + _MARGIN,
                retry_policy=infrastructure_retry(),
                summary=PublicText(f"{path}: {tool}" + (f" (attempt {attempt})" if attempt > 1 else "")),
            )
        except ActivityError as err:
            raise _failure(err) from err
        return result.model_dump(mode="json", exclude={"already_done"})

    async def _agent_call(
        self,
        step: Step,
        position: int,
        params: dict[str, Any],
        timeout_ms: int,
        attempt: int,
        path: str,
    ) -> Any:
        try:
            call = AgentCallParams.model_validate(params)
        except ValueError as exc:
            raise AttemptFailed(f"agent.call: the resolved params are invalid: {exc}", retryable=False) from exc
        budget = self._definition.config.token_budget
        if budget is not None and self._state.tokens_used >= budget:
            raise AttemptFailed(f"the run's tokenBudget of {budget} tokens is used up", retryable=False)
        agent = self._agents.get(call.agent)
        if agent is None:
            found: AgentFound = await self._local(StepRunActivities.agent, call.agent)
            if found.problem is not None:
                raise AttemptFailed(found.problem, retryable=False)
            agent = self._agents[call.agent] = AgentSpec.model_validate(found.model_dump(exclude={"problem"}))
        caps = [
            cap for cap in (call.max_tokens, budget - self._state.tokens_used if budget else None) if cap is not None
        ]
        limit = min(caps) if caps else None
        started = workflow.now()
        try:
            result = await workflow.execute_activity_method(
                LlmActivities.call_agent,
                AgentCallInput(
                    session_id=f"workflow:{self._data.execution_id}",
                    agent=agent,
                    action_type=step.name,
                    input=call.input,
                    call_key=f"step:{self._data.execution_id}:{path}",
                    max_tokens=limit,
                    breaker=True,
                ),
                start_to_close_timeout=timedelta(milliseconds=timeout_ms) + _MARGIN,
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=LLM_RETRY,
                summary=PublicText(f"{path}: agent.call {call.agent}"),
            )
        except ActivityError as err:
            spent = tokens_of_failed_call(err.cause)
            if spent and workflow.patched("step-invalid-reply-tokens"):
                # An invalid reply's tokens were used too: the run's tokenBudget counts them (issue 20).
                self._state.tokens_used += spent
                self._live.tokens_used = self._state.tokens_used
            raise _failure(err) from err
        tokens = result.prompt_tokens + result.completion_tokens
        self._state.tokens_used += tokens
        self._live.tokens_used = self._state.tokens_used
        output = AgentCallOutput(
            output=result.output, agent=call.agent, model=result.model, tokens=tokens, cost_usd=result.cost_usd
        ).model_dump(mode="json", exclude={"already_done"})
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
        return output

    async def _workflow_run(self, step: Step, position: int, params: dict[str, Any], attempt: int, path: str) -> Any:
        try:
            call = WorkflowRunParams.model_validate(params)
        except ValueError as exc:
            raise AttemptFailed(f"workflow.run: the resolved params are invalid: {exc}", retryable=False) from exc
        if self._data.depth + 1 > self._data.max_depth:
            raise AttemptFailed(f"workflow.run: nested deeper than {self._data.max_depth} workflows", retryable=False)
        child_id = execution_id_for("child", self._data.execution_id, path, attempt)
        root_id = self._data.root_execution_id or self._data.execution_id
        found = await self._local(
            StepRunActivities.definition,
            DefinitionRef(
                workflow=call.workflow,
                root_execution_id=root_id,
                child_execution_id=child_id,
                spawn_limit=self._data.max_spawned,
            ),
        )
        if found.problem is not None:
            raise AttemptFailed(f"workflow.run: {found.problem}", retryable=False)
        started = workflow.now()
        # The parent's own settings (depth limit, history limit, search attributes, who started it) carry over.
        child = self._data.model_copy(
            update={
                "execution_id": child_id,
                "workflow": call.workflow,
                "version": found.version,
                "definition": found.definition,
                "input": call.input,
                "context": call.context,
                "trigger": {"kind": "workflow.run", "execution_id": self._data.execution_id, "step": path},
                "parent_execution_id": self._data.execution_id,
                "root_execution_id": root_id,
                "depth": self._data.depth + 1,
                "resume": None,
            }
        )
        lineage = [*self._lineage(), call.workflow]
        try:
            result: RunResult = await workflow.execute_child_workflow(
                StepWorkflowRun.run,
                child,
                id=execution_workflow_id(child_id),
                search_attributes=TypedSearchAttributes(
                    execution_attributes(lineage) if self._data.search_attributes else []
                ),
                static_summary=PublicText(f"{call.workflow} v{found.version} (from {self._data.workflow})"),
            )
        except ChildWorkflowError as err:
            raise _failure(err) from err
        if result.status != "completed":
            raise AttemptFailed(
                f"workflow.run: execution {child_id} of '{call.workflow}' {result.status}: {result.error}",
                retryable=False,
            )
        output = WorkflowRunOutput(execution_id=child_id, status=result.status, output=result.output).model_dump(
            mode="json", exclude={"already_done"}
        )
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
        return output

    # ---------------------------------------------------------------- records

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
        return RunResult(
            execution_id=self._data.execution_id,
            status=status,
            output=output,
            error=error,
            step_errors=self._state.step_errors,
        )

    @staticmethod
    def _lineage() -> list[str]:
        return list(workflow.info().typed_search_attributes.get(sa.STEP_WORKFLOW) or [])

    @staticmethod
    async def _local(activity: Any, arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_BOOKKEEPING
        )


def _outputs(definition: WorkflowDefinition, state: ResumeState) -> dict[str, Any]:
    return {
        step.variable: state.variables[step.name] for step in visible(definition.steps) if step.name in state.variables
    }


def _is_graph(steps: list[Step]) -> bool:
    return any(step.dependencies is not None for step in steps)


def _retry_of(step: Step, definition: WorkflowDefinition) -> StepRetry:
    if step.retry is not None:
        return step.retry
    if step.on_error is not None and step.on_error.strategy == "retry":
        policy = step.on_error
        return StepRetry(
            max_attempts=policy.max_retries + 1,
            backoff=policy.backoff_strategy,
            initial_interval_ms=policy.initial_interval_ms,
            max_interval_ms=policy.max_interval_ms,
        )
    return StepRetry(max_attempts=definition.config.max_retries + 1)


async def _join(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every task; the first failure cancels the others (and is raised once they have stopped)."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _resolve(step: Step, scope: dict[str, Any]) -> dict[str, Any]:
    if step.tool == "http.request" and "url" in step.params:
        rest = {key: value for key, value in step.params.items() if key != "url"}
        return {**resolve(rest, scope), "url": resolve(step.params["url"], scope, encode_url_value)}
    resolved: dict[str, Any] = resolve(step.params, scope)
    return resolved
