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

This module holds the handlers and the walk; the rest is split along its seams, each a part of the one
workflow class: the run's state (run_state.py), retries and backoff (attempts.py), variable scope and
conditions (scope.py), records (bookkeeping.py), tool / agent.call / workflow.run calls and
compensations (calls.py), and waits for events and people (waits.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.steps.records import StepRunActivities
    from core.agents.registry import AgentSpec
    from core.platform import errors
    from core.platform import search_attributes as sa
    from core.platform.pauses import (
        PauseInfo,
        PauseRequest,
        ResumeRequest,
        already_paused_error,
        not_paused_error,
        paused_error,
    )
    from core.platform.schemas import validation_error
    from core.steps.contracts import (
        EXTERNAL_EVENT_SIGNAL,
        TASK_ACTIONS,
        Compensable,
        DryStep,
        ExternalEvent,
        LiveState,
        PauseChange,
        ResumeState,
        RunInput,
        RunResult,
        StepError,
        TaskChange,
        TaskDecisionRequest,
        TaskOutcome,
        TaskReassignRequest,
    )
    from core.steps.definition import Step, StepWorkflowDefinition, visible
    from core.steps.references import MissingReference, resolve
    from core.steps.starting import begin_input

from workflows.steps.attempts import Compensate, StepFailed
from workflows.steps.run_state import Frame, OpenTask
from workflows.steps.waits import Waits


@workflow.defn(name="StepWorkflow")
class StepWorkflowRun(Waits):
    def __init__(self) -> None:
        self._live = LiveState()
        self._agents: dict[str, AgentSpec] = {}
        self._names: dict[str, str] = {}  # step name -> its variable, for steps whose outputs are run-wide
        self._carried_bytes: int | None = None  # JSON bytes of the run-wide outputs, counted from the first
        self._events: list[ExternalEvent] = []  # external events delivered to this run (wait_event steps)
        self._tasks: dict[str, OpenTask] = {}  # open human tasks by path
        self._decisions: dict[str, TaskOutcome] = {}
        self._event_ids: set[str] = set()
        self._paused: PauseInfo | None = None
        self._ended = False
        self._pausing = asyncio.Lock()  # a pause's record and a resume's are written in their order
        self._dry_steps: list[DryStep] | None = None
        self._dry_served: dict[str, Literal["record", "stub", "none", "evaluated"]] = {}
        self._dry_taken: dict[str, Literal["then", "else"]] = {}

    @workflow.update
    async def pause(self, request: PauseRequest) -> LiveState:
        """Start no further step until resumed: the step under way finishes (core/platform/pauses.py)."""
        self._check_pause()
        self._paused = self._live.paused = PauseInfo(actor=request.actor, reason=request.reason, ts=workflow.now())
        await self._local(
            StepRunActivities.pause_change, PauseChange(execution_id=self._data.execution_id, paused=self._paused)
        )
        return self._live

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_pause()

    def _check_pause(self) -> None:
        if self._ended:
            raise errors.NOT_PAUSED.error("the execution has ended; there is nothing to pause")
        if self._paused is not None:
            raise already_paused_error("this execution", self._paused)

    @workflow.update
    async def resume(self, request: ResumeRequest) -> LiveState:
        if self._paused is None:
            raise not_paused_error("this execution")
        self._paused = self._live.paused = None
        await self._local(
            StepRunActivities.pause_change, PauseChange(execution_id=self._data.execution_id, paused=None)
        )
        return self._live

    async def _record_pause(self) -> None:
        await workflow.wait_condition(lambda: hasattr(self, "_data"))  # an update may come before the run starts
        change = PauseChange(execution_id=self._data.execution_id, paused=self._paused)
        await self._local(StepRunActivities.pause_change, change)

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if self._paused is None:
            raise not_paused_error("this execution")

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

    @workflow.update
    async def reassign_task(self, request: TaskReassignRequest) -> TaskOutcome | None:
        """Give an open task to someone else (the API's reassign and hand-over, checked there): its row
        follows, and the new assignee is told."""
        task = self._tasks.get(request.path)
        if task is None:
            raise errors.NO_TASK_OPEN.error(f"no task is open at '{request.path}' (decided, or the run moved on)")
        task.opened = task.opened.model_copy(update={"assignee": request.to, "on_behalf_of": request.on_behalf_of})
        await self._local(
            StepRunActivities.task_change,
            TaskChange(
                task_id=task.opened.task_id,
                change="reassigned",
                ts=workflow.now(),
                actor=request.actor,
                assignee=request.to,
                on_behalf_of=request.on_behalf_of,
                reason=request.reason,
            ),
        )
        return None

    @reassign_task.validator
    def _validate_reassign(self, request: TaskReassignRequest) -> None:
        if request.path not in self._tasks:
            raise errors.NO_TASK_OPEN.error(f"no task is open at '{request.path}' (decided, or the run moved on)")

    def _check_task(self, request: TaskDecisionRequest) -> OpenTask:
        if self._paused is not None:
            raise paused_error("this execution", self._paused)
        task = self._tasks.get(request.path)
        if task is None:
            raise errors.NO_TASK_OPEN.error(f"no task is open at '{request.path}' (decided, or the run moved on)")
        later = task.opened.escalate_to
        deciders = [task.opened.assignee] + ([later] if task.escalated and later else [])
        if task.opened.on_behalf_of:  # back from their absence, the person may decide their own task
            deciders.append(task.opened.on_behalf_of)
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
        definition = StepWorkflowDefinition.model_validate(data.definition)
        if data.dry_run is not None:
            self._dry_steps = []  # a dry run writes nothing: its steps are kept here and returned
        elif data.resume is None or not data.resume.begun:
            await self._local(StepRunActivities.begin, begin_input(data))
            if data.resume is not None:
                data.resume.begun = True
        state = data.resume or ResumeState(position=0, variables={}, started_at=workflow.now())
        # One run per instance: its input, definition and state, read by every method of the walk.
        self._data, self._definition, self._state = data, definition, state
        if state.paused is not None and self._paused is None:
            self._paused = self._live.paused = state.paused
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
                    self._state.paused = self._paused
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
        if self._paused is not None:  # this step starts once the run is resumed
            await workflow.wait_condition(lambda: self._paused is None)
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
                if self._data.dry_run is not None:  # a dry run opens no task
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
            if run < schedule.max_runs and self._data.dry_run is None:  # a dry run does not wait
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
        if self._data.dry_run is not None and (step.wait_event is not None or step.human_task is not None):
            output = self._served(path, step.kind)  # a dry run waits for nobody: the record answers
        elif step.parallel is not None:
            branches = step.parallel.branches
            await _join([asyncio.create_task(self._steps(b.steps, frame.inner())) for b in branches])
            output = {b.name: self._collect(b.steps, frame) for b in branches}
        elif step.branch is not None:
            taken = await self._holds(step.branch.condition, scope)
            if self._dry_steps is not None:
                self._dry_taken[path] = "then" if taken else "else"
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

    # ---------------------------------------------------------------- variables

    # ---------------------------------------------------------------- sagas

    # ---------------------------------------------------------------- records


def _is_graph(steps: list[Step]) -> bool:
    return any(step.dependencies is not None for step in steps)


async def _join(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every task; the first failure cancels the others (and is raised once they have stopped)."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
