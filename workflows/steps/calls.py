"""Calls of the step interpreter: a tool step's attempts (one activity each, the step's own retries
between them), agent.call (the LLM activity), workflow.run (a child execution), and the compensations
a failed saga runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.steps.records import AgentFound, StepRunActivities
    from core.agents.registry import AgentSpec
    from core.agents.sessions import ActingInput, AgentCallInput, tokens_of_failed_call
    from core.platform import errors
    from core.platform.public_text import PublicText
    from core.policy.contracts import ApprovalInput
    from core.steps.contracts import (
        DefinitionRef,
        RunResult,
        ToolCall,
        execution_workflow_id,
    )
    from core.steps.definition import Step
    from core.steps.references import MissingReference
    from core.steps.starting import execution_attributes, execution_id_for
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

from core.steps.starting import INTERPRETER
from workflows.policy.approval import PolicyApprovalWorkflow, approval_workflow_id
from workflows.steps.acting import ask_agent
from workflows.steps.attempts import AttemptFailed, StepFailed, _failure, _retry_of, backoff
from workflows.steps.bookkeeping import Bookkeeping
from workflows.steps.run_state import _MARGIN, DEFAULT_STEP_TIMEOUT_MS, MCP_ACTIVITY, POLICY_ACTIVITY, Frame
from workflows.steps.scope import _resolve

# A step's agent.call is checked against the approval policy (issue 25). Runs recorded before decision
# 0027 carry the first marker after the agent lookup; later runs carry the second one before it.
AGENT_CALL_POLICY = "step-agent-call-policy"
AGENT_CALL_POLICY_BEFORE_LOOKUP = "step-agent-call-policy-before-lookup"


def _approval_asked(err: ActivityError) -> ApprovalInput | None:
    """The approval a tool's policy check asked for (its details), or None for any other failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == errors.APPROVAL_REQUIRED.type and cause.details:
        return ApprovalInput.model_validate(cause.details[0])
    return None


class Calls(Bookkeeping):
    """Tool attempts, agent calls, child workflows and compensations of a run (a part of StepWorkflowRun)."""

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
        if self._data.dry_run is not None:
            return await self._dry_call(step, position, params, path)
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

        async def attempt_once(call: ToolCall) -> Any:
            return await workflow.execute_activity(
                activity_name,
                call,
                result_type=output_type,
                start_to_close_timeout=timedelta(milliseconds=timeout_ms) + _MARGIN,
                retry_policy=infrastructure_retry(),
                summary=PublicText(f"{path}: {tool}" + (f" (attempt {attempt})" if attempt > 1 else "")),
            )

        try:
            result = await self._approved(call, attempt_once)
        except ActivityError as err:
            raise _failure(err) from err
        return result.model_dump(mode="json", exclude={"already_done"})

    async def _approved(self, call: ToolCall, once: Callable[[ToolCall], Awaitable[Any]]) -> Any:
        """``once(call)``, and when the approval policy asks people first (core/policy), the step waits on
        its approval and runs it again with the approval's id. Its rejection fails the attempt for good."""
        try:
            return await once(call)
        except ActivityError as err:
            asked = _approval_asked(err)
            if asked is None:
                raise
            decided = await workflow.execute_child_workflow(
                PolicyApprovalWorkflow.run, asked, id=approval_workflow_id(asked.approval_id)
            )
            if decided.status != "approved":
                raise AttemptFailed(
                    f"{call.tool} was not approved: {decided.message or decided.status}", retryable=False
                ) from err
            return await once(call.model_copy(update={"approval_id": asked.approval_id}))

    async def _dry_call(self, step: Step, position: int, params: dict[str, Any], path: str) -> Any:
        """A dry run calls nothing: the step's recorded output (or stub) is its output, and it is kept
        among the run's steps as a tool records its own."""
        started = workflow.now()
        try:
            output = self._served(path, step.kind)
        except StepFailed as failed:
            raise AttemptFailed(failed.message, retryable=False) from failed
        await self._record(step, position, "completed", started=started, params=params, output=output, path=path)
        return output

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
        # The patch is asked before the agent lookup and again, under its first name, after it. A local
        # activity's result replays inside the task that started it, but a query answered while the
        # result waited moves everything recorded after it into the next task, where a replaying
        # patched() cannot see its marker yet (decision 0027). Asked before the lookup, the marker lands
        # in the task that starts the lookup; runs recorded before keep their marker after it.
        policy_checked = workflow.patched(AGENT_CALL_POLICY_BEFORE_LOOKUP)
        agent = self._agents.get(call.agent)
        if agent is None:
            found: AgentFound = await self._local(StepRunActivities.agent, call.agent)
            if found.problem is not None:
                raise AttemptFailed(found.problem, retryable=False)
            agent = self._agents[call.agent] = AgentSpec.model_validate(found.model_dump(exclude={"problem"}))
        if policy_checked or workflow.patched(AGENT_CALL_POLICY):
            # agent.call is a step tool like any other: the approval policy is checked before it (issue 25).
            await self._policy_checked(
                ToolCall(
                    execution_id=self._data.execution_id,
                    workflow=self._data.workflow,
                    path=path,
                    position=position,
                    name=step.name,
                    tool="agent.call",
                    params=params,
                    attempt=attempt,
                    timeout_ms=timeout_ms,
                    started_ts=workflow.now(),
                )
            )
        caps = [
            cap for cap in (call.max_tokens, budget - self._state.tokens_used if budget else None) if cap is not None
        ]
        limit = min(caps) if caps else None
        started = workflow.now()
        asking = AgentCallInput(
            session_id=f"workflow:{self._data.execution_id}",
            agent=agent,
            action_type=step.name,
            input=call.input,
            call_key=f"step:{self._data.execution_id}:{path}",
            max_tokens=limit,
            breaker=True,
        )
        try:
            # An acting agent's loop is the AgentActing child (workflows/steps/acting.py).
            result = await ask_agent(
                ActingInput(call=asking, caller=f"workflow:{self._data.workflow}:{self._data.execution_id}"),
                model_time=timedelta(milliseconds=timeout_ms) + _MARGIN,
                summary=f"{path}: agent.call {call.agent}",
            )
        except ChildWorkflowError as err:
            cause = err.cause.cause if isinstance(err.cause, ActivityError) else err.cause
            message = getattr(cause, "message", None) or str(cause or err)
            raise AttemptFailed(f"agent.call {call.agent}: {message}", retryable=False) from err
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
        await self._record_completed(step, position, params, output, attempt, started, path)
        return output

    async def _policy_checked(self, call: ToolCall) -> None:
        """The approval policy alone, for a step tool whose effect is not a tool activity (agent.call)."""

        async def check(call: ToolCall) -> None:
            await workflow.execute_activity(
                POLICY_ACTIVITY,
                call,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=infrastructure_retry(),
                summary=PublicText(f"{call.path}: may it call {call.tool}"),
            )

        try:
            await self._approved(call, check)
        except ActivityError as err:
            raise _failure(err) from err

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
            # By its type name (the interpreter composes this part): the same command as by the method.
            result = await workflow.execute_child_workflow(
                INTERPRETER,
                child,
                result_type=RunResult,
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
        await self._record_completed(step, position, params, output, attempt, started, path)
        return output

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
