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
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.agents.llm import LLM_RETRY, LlmActivities
    from activities.steps.records import AgentFound, StepRunActivities
    from core.agents.registry import AgentSpec
    from core.agents.sessions import AgentCallInput
    from core.platform import errors
    from core.platform import search_attributes as sa
    from core.steps.contracts import (
        ConditionInput,
        DefinitionRef,
        ExecutionStatus,
        FinishInput,
        LiveState,
        ResumeState,
        RunInput,
        RunResult,
        StepError,
        StepRecordInput,
        ToolCall,
        execution_workflow_id,
    )
    from core.steps.definition import Step, StepRetry, WorkflowDefinition
    from core.steps.references import REFERENCE, MissingReference, encode_url_value, lookup, resolve, truthy
    from core.steps.starting import begin_input, execution_attributes, execution_id_for
    from core.steps.tools import (
        STEP_TOOLS,
        AgentCallOutput,
        AgentCallParams,
        McpCallOutput,
        WorkflowRunOutput,
        WorkflowRunParams,
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
    def __init__(self, message: str, retry_count: int = 0, params: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_count = retry_count
        self.params = params


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

    @workflow.query
    def live(self) -> LiveState:
        return self._live

    @workflow.run
    async def run(self, data: RunInput) -> RunResult:
        definition = WorkflowDefinition.model_validate(data.definition)
        if data.resume is None:
            await self._local(StepRunActivities.begin, begin_input(data))
        state = data.resume or ResumeState(position=0, variables={}, started_at=workflow.now())
        self._live.steps_done, self._live.tokens_used = state.steps_done, state.tokens_used
        deadline = state.started_at + timedelta(milliseconds=definition.config.timeout_ms)
        remaining = max((deadline - workflow.now()).total_seconds(), 0.001)
        try:
            await asyncio.wait_for(self._walk(data, definition, state), timeout=remaining)
        except TimeoutError:
            where = f" (in step '{self._live.current_step}')" if self._live.current_step else ""
            message = f"the run exceeded its timeoutMs of {definition.config.timeout_ms} ms{where}"
            return await self._end(data, definition, state, "failed", message)
        except StepFailed as failed:
            return await self._end(data, definition, state, "failed", failed.message)
        except asyncio.CancelledError:
            await self._end(data, definition, state, "cancelled", "cancelled on request")
            raise
        return await self._end(data, definition, state, "completed", None)

    # ---------------------------------------------------------------- the walk

    async def _walk(self, data: RunInput, definition: WorkflowDefinition, state: ResumeState) -> None:
        first = state.position
        for position in range(first, len(definition.steps)):
            state.position = position
            if position > first and self._history_full(data):
                workflow.continue_as_new(data.model_copy(update={"resume": state}))
            step = definition.steps[position]
            self._live.current_step, self._live.attempt = step.name, 0
            if data.search_attributes:
                workflow.upsert_search_attributes([sa.CURRENT_STEP.value_set(step.name)])
            scope = _scope(data, definition, state)
            started = workflow.now()
            try:
                if step.if_ is not None and not await self._holds(step.if_, scope):
                    await self._record(data, step, position, "skipped", started=started)
                    state.steps_done += 1
                    continue
                output = await self._attempts(data, definition, state, step, position, scope)
            except StepFailed as failed:
                await self._record(
                    data,
                    step,
                    position,
                    "failed",
                    started=started,
                    params=failed.params,
                    error=failed.message,
                    retry_count=failed.retry_count,
                )
                state.steps_done += 1
                if definition.config.continue_on_error:
                    state.step_errors.append(StepError(step=step.name, tool=step.tool, error=failed.message))
                    continue
                raise StepFailed(f"step '{step.name}' ({step.tool}) failed: {failed.message}") from failed
            state.variables[step.name] = output
            state.steps_done += 1
            self._live.steps_done = state.steps_done
        state.position = len(definition.steps)
        self._live.current_step = None

    @staticmethod
    def _history_full(data: RunInput) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= data.history_limit or info.is_continue_as_new_suggested()

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
        data: RunInput,
        definition: WorkflowDefinition,
        state: ResumeState,
        step: Step,
        position: int,
        scope: dict[str, Any],
    ) -> Any:
        try:
            params = _resolve(step, scope)
        except MissingReference as exc:
            raise StepFailed(f"{exc}") from exc
        retry = step.retry or StepRetry(max_attempts=definition.config.max_retries + 1)
        for attempt in range(1, retry.max_attempts + 1):
            self._live.attempt = attempt
            try:
                return await self._call(data, definition, state, step, position, params, attempt)
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
        data: RunInput,
        definition: WorkflowDefinition,
        state: ResumeState,
        step: Step,
        position: int,
        params: dict[str, Any],
        attempt: int,
    ) -> Any:
        spec = STEP_TOOLS.get(step.tool)
        default_ms = int(spec.time_limit(None).total_seconds() * 1000) if spec else DEFAULT_STEP_TIMEOUT_MS
        timeout_ms = step.timeout_ms or default_ms
        if step.tool == "agent.call":
            return await self._agent_call(data, definition, state, step, position, params, timeout_ms, attempt)
        if step.tool == "workflow.run":
            return await self._workflow_run(data, step, position, params, attempt)
        call = ToolCall(
            execution_id=data.execution_id,
            workflow=data.workflow,
            path=step.name,
            position=position,
            name=step.name,
            tool=step.tool,
            params=params,
            attempt=attempt,
            timeout_ms=timeout_ms,
            started_ts=workflow.now(),
        )
        activity_name, output_type = (spec.activity_name, spec.output) if spec else (MCP_ACTIVITY, McpCallOutput)
        try:
            result = await workflow.execute_activity(
                activity_name,
                call,
                result_type=output_type,
                start_to_close_timeout=timedelta(milliseconds=timeout_ms) + _MARGIN,
                retry_policy=infrastructure_retry(),
                summary=f"{step.name}: {step.tool}" + (f" (attempt {attempt})" if attempt > 1 else ""),
            )
        except ActivityError as err:
            raise _failure(err) from err
        return result.model_dump(mode="json", exclude={"already_done"})

    async def _agent_call(
        self,
        data: RunInput,
        definition: WorkflowDefinition,
        state: ResumeState,
        step: Step,
        position: int,
        params: dict[str, Any],
        timeout_ms: int,
        attempt: int,
    ) -> Any:
        try:
            call = AgentCallParams.model_validate(params)
        except ValueError as exc:
            raise AttemptFailed(f"agent.call: the resolved params are invalid: {exc}", retryable=False) from exc
        budget = definition.config.token_budget
        if budget is not None and state.tokens_used >= budget:
            raise AttemptFailed(f"the run's tokenBudget of {budget} tokens is used up", retryable=False)
        agent = self._agents.get(call.agent)
        if agent is None:
            found: AgentFound = await self._local(StepRunActivities.agent, call.agent)
            if found.problem is not None:
                raise AttemptFailed(found.problem, retryable=False)
            agent = self._agents[call.agent] = AgentSpec.model_validate(found.model_dump(exclude={"problem"}))
        caps = [cap for cap in (call.max_tokens, budget - state.tokens_used if budget else None) if cap is not None]
        limit = min(caps) if caps else None
        started = workflow.now()
        try:
            result = await workflow.execute_activity_method(
                LlmActivities.call_agent,
                AgentCallInput(
                    session_id=f"workflow:{data.execution_id}",
                    agent=agent,
                    action_type=step.name,
                    input=call.input,
                    call_key=f"step:{data.execution_id}:{step.name}",
                    max_tokens=limit,
                ),
                start_to_close_timeout=timedelta(milliseconds=timeout_ms) + _MARGIN,
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=LLM_RETRY,
                summary=f"{step.name}: agent.call {call.agent}",
            )
        except ActivityError as err:
            raise _failure(err) from err
        tokens = result.prompt_tokens + result.completion_tokens
        state.tokens_used += tokens
        self._live.tokens_used = state.tokens_used
        output = AgentCallOutput(
            output=result.output, agent=call.agent, model=result.model, tokens=tokens, cost_usd=result.cost_usd
        ).model_dump(mode="json", exclude={"already_done"})
        await self._record(
            data, step, position, "completed", started=started, params=params, output=output, retry_count=attempt - 1
        )
        return output

    async def _workflow_run(
        self, data: RunInput, step: Step, position: int, params: dict[str, Any], attempt: int
    ) -> Any:
        try:
            call = WorkflowRunParams.model_validate(params)
        except ValueError as exc:
            raise AttemptFailed(f"workflow.run: the resolved params are invalid: {exc}", retryable=False) from exc
        if data.depth + 1 > data.max_depth:
            raise AttemptFailed(f"workflow.run: nested deeper than {data.max_depth} workflows", retryable=False)
        found = await self._local(StepRunActivities.definition, DefinitionRef(workflow=call.workflow))
        if found.problem is not None:
            raise AttemptFailed(f"workflow.run: {found.problem}", retryable=False)
        started = workflow.now()
        child_id = execution_id_for("child", data.execution_id, step.name, attempt)
        # The parent's own settings (depth limit, history limit, search attributes, who started it) carry over.
        child = data.model_copy(
            update={
                "execution_id": child_id,
                "workflow": call.workflow,
                "version": found.version,
                "definition": found.definition,
                "input": call.input,
                "context": call.context,
                "trigger": {"kind": "workflow.run", "execution_id": data.execution_id, "step": step.name},
                "parent_execution_id": data.execution_id,
                "depth": data.depth + 1,
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
                    execution_attributes(lineage) if data.search_attributes else []
                ),
                static_summary=f"{call.workflow} v{found.version} (from {data.workflow})",
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
            data, step, position, "completed", started=started, params=params, output=output, retry_count=attempt - 1
        )
        return output

    # ---------------------------------------------------------------- records

    async def _record(
        self,
        data: RunInput,
        step: Step,
        position: int,
        status: Literal["completed", "failed", "skipped"],
        *,
        started: Any,
        params: Any = None,
        output: Any = None,
        error: str | None = None,
        retry_count: int = 0,
    ) -> None:
        await self._local(
            StepRunActivities.record,
            StepRecordInput(
                execution_id=data.execution_id,
                path=step.name,
                position=position,
                name=step.name,
                tool=step.tool,
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
        data: RunInput,
        definition: WorkflowDefinition,
        state: ResumeState,
        status: ExecutionStatus,
        error: str | None,
    ) -> RunResult:
        output = _outputs(definition, state)
        await self._local(
            StepRunActivities.finish,
            FinishInput(
                execution_id=data.execution_id, status=status, output=output, error=error, step_errors=state.step_errors
            ),
        )
        if data.search_attributes:
            workflow.upsert_search_attributes([sa.EXECUTION_STATUS.value_set(status)])
        self._live.current_step = None
        return RunResult(
            execution_id=data.execution_id, status=status, output=output, error=error, step_errors=state.step_errors
        )

    @staticmethod
    def _lineage() -> list[str]:
        return list(workflow.info().typed_search_attributes.get(sa.STEP_WORKFLOW) or [])

    @staticmethod
    async def _local(activity: Any, arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_BOOKKEEPING
        )


def _scope(data: RunInput, definition: WorkflowDefinition, state: ResumeState) -> dict[str, Any]:
    """What references and conditions see: input, context, and each completed step's output under its
    name and its ``assign``."""
    scope: dict[str, Any] = {"input": data.input, "context": data.context}
    for step in definition.steps:
        if step.name in state.variables:
            scope[step.name] = state.variables[step.name]
            scope[step.variable] = state.variables[step.name]
    return scope


def _outputs(definition: WorkflowDefinition, state: ResumeState) -> dict[str, Any]:
    return {step.variable: state.variables[step.name] for step in definition.steps if step.name in state.variables}


def _resolve(step: Step, scope: dict[str, Any]) -> dict[str, Any]:
    if step.tool == "http.request" and "url" in step.params:
        rest = {key: value for key, value in step.params.items() if key != "url"}
        return {**resolve(rest, scope), "url": resolve(step.params["url"], scope, encode_url_value)}
    resolved: dict[str, Any] = resolve(step.params, scope)
    return resolved
