"""Agent session: a goal handed to an orchestrator that selects agents, delegates to them (planner;
then estimator, resource, risk in parallel on the plan; then validator; reporter last with all
outputs), optionally waits for approval of the final output with one revision round, and records
everything. Workflow id ``agent-session-<session id>``.

Each agent call is one activity (activities/agents/llm.py). Completed calls are never repeated: Temporal
records their results, and each call's log row is keyed by (session, stage, agent, round).
Long sessions continue as new at a stage boundary, carrying their state.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.agents.llm import LLM_RETRY, LlmActivities
    from activities.agents.sessions import SessionActivities
    from core.agents.registry import AgentSpec, stages
    from core.agents.sessions import (
        ORCHESTRATOR,
        ActingInput,
        AgentCallInput,
        AgentCallResult,
        SessionDecision,
        SessionInput,
        SessionRecord,
        SessionState,
        SessionStatus,
        failed_call_cut_by_budget,
        tokens_of_failed_call,
    )
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
    from core.platform.public_text import PublicText


_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))


def session_workflow_id(session_id: str) -> str:
    return f"agent-session-{session_id}"


def selection_agent(agents: list[AgentSpec]) -> AgentSpec:
    """The orchestrator's own call: choose agents by capability, constrained to the registry."""
    names = sorted(a.agent_name for a in agents)
    catalogue = "\n".join(f"- {a.agent_name}: {', '.join(a.capabilities)}" for a in agents)
    return AgentSpec(
        agent_name=ORCHESTRATOR,
        agent_type=ORCHESTRATOR,
        capabilities=["agent selection", "task delegation"],
        system_prompt="You are an expert project orchestrator. Choose the agents needed for the goal from this "
        f"list, by their capabilities:\n{catalogue}",
        output_schema={
            "type": "object",
            "properties": {"agents": {"type": "array", "minItems": 1, "items": {"enum": names}}},
            "required": ["agents"],
        },
    )


@workflow.defn(name="AgentSession")
class AgentSessionWorkflow:
    @workflow.init
    def __init__(self, data: SessionInput) -> None:
        self._input = data
        self._state = data.carried.model_copy(deep=True) if data.carried else SessionState()
        self._agents = {a.agent_name: a for a in data.agents}
        self._decision: SessionDecision | None = None
        self._pausing = asyncio.Lock()  # a pause's record and a resume's are written in their order

    @workflow.query
    def progress(self) -> SessionState:
        return self._state

    @workflow.update
    async def decide(self, decision: SessionDecision) -> SessionState:
        self._decision = decision
        await workflow.wait_condition(lambda: self._state.status != "awaiting_approval" or self._decision is None)
        return self._state

    @decide.validator
    def _validate_decide(self, decision: SessionDecision) -> None:
        if self._state.status != "awaiting_approval" or self._decision is not None:
            raise errors.NOT_AWAITING_APPROVAL.error(
                f"session is {self._state.status}; only a session awaiting approval takes a decision",
            )
        if self._state.paused is not None:
            raise paused_error("this session", self._state.paused)

    @workflow.update
    async def pause(self, request: PauseRequest) -> SessionState:
        """Start no new agent call until resumed; a call under way finishes (core/platform/pauses.py)."""
        async with self._pausing:
            self._check_pause()
            self._state.paused = PauseInfo(actor=request.actor, reason=request.reason, ts=workflow.now())
            await self._record(self._state.status)
        return self._state

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_pause()

    def _check_pause(self) -> None:
        if self._state.status not in ("running", "awaiting_approval"):
            raise errors.NOT_PAUSED.error(f"session is {self._state.status}; there is nothing to pause")
        if self._state.paused is not None:
            raise already_paused_error("this session", self._state.paused)

    @workflow.update
    async def resume(self, request: ResumeRequest) -> SessionState:
        async with self._pausing:
            if self._state.paused is None:
                raise not_paused_error("this session")
            self._state.paused = None
            await self._record(self._state.status)
        return self._state

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if self._state.paused is None:
            raise not_paused_error("this session")

    @workflow.run
    async def run(self, data: SessionInput) -> SessionState:
        state = self._state
        try:
            if data.carried is None or data.forked_from is not None:
                await self._record("running")
            if not state.selected:
                state.selected = data.requested or await self._select()
                workflow.upsert_search_attributes([sa.SESSION_AGENTS.value_set(state.selected)])
                await self._record("running")
            plan = stages(state.selected)
            while state.stage < len(plan):
                if self._over_budget():
                    return await self._finish("budget_exceeded")
                await asyncio.gather(*(self._delegate(name) for name in plan[state.stage]))
                state.stage += 1
                await self._record("running")
                if state.stage < len(plan) and self._history_is_long():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    state.runs += 1
                    workflow.continue_as_new(data.model_copy(update={"carried": state, "forked_from": None}))
            if self._over_budget():
                return await self._finish("budget_exceeded")
            if data.approval_required and not await self._approved():
                return await self._finish("failed")
            return await self._finish("completed")
        except (ActivityError, ChildWorkflowError) as err:
            cause = err.cause
            if isinstance(cause, ActivityError):  # an acting agent's turn that failed inside its workflow
                cause = cause.cause
            if isinstance(cause, CancelledError):  # the session was cancelled while an agent was working
                state.reason = "cancelled on request"
                await self._finish("cancelled")
                raise asyncio.CancelledError() from err
            state.reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            state.tokens += tokens_of_failed_call(cause)  # an invalid reply's tokens were used too (issue 20)
            if failed_call_cut_by_budget(cause) and workflow.patched("budget-cut-off"):
                return await self._finish("budget_exceeded")  # the budget, not the model, stopped the reply
            return await self._finish("failed")
        except asyncio.CancelledError:
            state.reason = "cancelled on request"
            await self._finish("cancelled")
            raise

    # ------------------------------------------------------------------ steps

    async def _select(self) -> list[str]:
        result = await self._call(
            selection_agent(list(self._agents.values())),
            "select_agents",
            {"goal": self._input.goal, "context": self._input.context},
            "select",
        )
        chosen = [name for name in result.output["agents"] if name in self._agents]  # checked against the registry
        return list(dict.fromkeys(chosen))

    async def _delegate(self, name: str) -> None:
        state = self._state
        agent = self._agents[name]
        payload: dict[str, object] = {"goal": self._input.goal, "context": self._input.context}
        if name == "reporter":
            payload["outputs"] = dict(state.outputs)
            if state.revision_feedback:
                payload["revision_feedback"] = state.revision_feedback
        elif name == "validator":
            payload["outputs"] = dict(state.outputs)
        elif name != "planner" and "planner" in state.outputs:
            payload["plan"] = state.outputs["planner"]
        round_ = "rev" if state.revised else "r0"
        result = await self._call(agent, f"{agent.agent_type}_task", payload, f"{state.stage}:{name}:{round_}")
        state.outputs[name] = result.output

    async def _call(self, agent: AgentSpec, action: str, payload: dict[str, object], key: str) -> AgentCallResult:
        state = self._state
        if state.paused is not None:  # the call starts once the session is resumed
            await workflow.wait_condition(lambda: state.paused is None)
        budget = self._input.token_budget
        call = AgentCallInput(
            session_id=self._input.session_id,
            agent=agent,
            action_type=action,
            input=payload,
            call_key=f"{self._input.session_id}:{key}",
            max_tokens=max(1, budget - state.tokens) if budget else None,
        )
        if agent.tools:
            # An agent with tools runs its loop as the AgentActing child (workflows/steps/acting.py, named
            # here, not imported: the agents domain imports no other); the session's tool-call limit is
            # the agent's per-call limit times the session's agents, shared.
            result: AgentCallResult = await workflow.execute_child_workflow(
                "AgentActing",
                ActingInput(call=call, caller=f"session:{self._input.session_id}", tool_calls_left=self._tools_left()),
                id=f"acting-{call.call_key}",
                result_type=AgentCallResult,
            )
            state.tool_calls += result.tool_calls_made
        else:
            result = await workflow.execute_activity_method(
                LlmActivities.call_agent,
                call,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=LLM_RETRY,
                summary=PublicText(f"{agent.agent_name}: {action}"),
            )
        state.calls += 1
        state.tokens += result.prompt_tokens + result.completion_tokens
        state.cost_usd = round(state.cost_usd + result.cost_usd, 6)
        return result

    async def _approved(self) -> bool:
        state = self._state
        while True:
            await self._record("awaiting_approval")
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None,
                    timeout=timedelta(seconds=self._input.approval_timeout_seconds),
                )
            except TimeoutError:
                # Fell due while paused: the time-out acts on resume (no decision is taken while paused).
                await workflow.wait_condition(lambda: state.paused is None)
                state.reason = f"approval timed out after {self._input.approval_timeout_seconds}s"
                state.decisions.append({"decision": "timeout", "actor": "system", "ts": workflow.now().isoformat()})
                return False
            decision = self._decision
            assert decision is not None
            state.decisions.append({**decision.model_dump(), "ts": workflow.now().isoformat()})
            if decision.decision == "approve":
                state.status = "running"
                self._decision = None
                return True
            if state.revised or "reporter" not in self._agents or "reporter" not in state.selected:
                state.reason = f"rejected: {decision.comment or 'no comment'}"
                state.status = "running"
                self._decision = None
                return False
            # One revision round: the reporter gets the feedback and compiles again.
            state.revised = True
            state.revision_feedback = decision.comment or "revise the report"
            state.status = "running"
            self._decision = None
            await self._record("running")
            await self._delegate("reporter")

    # ------------------------------------------------------------------ bookkeeping

    def _tools_left(self) -> int:
        """Tool calls the session may still make: TRELLIS_SESSION_MAX_TOOL_CALLS across its agents."""
        return max(0, self._input.max_tool_calls - self._state.tool_calls)

    def _over_budget(self) -> bool:
        budget = self._input.token_budget
        if budget is not None and self._state.tokens >= budget:
            self._state.reason = f"token budget of {budget} reached ({self._state.tokens} tokens used)"
            return True
        return False

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self._input.history_limit

    async def _record(self, status: SessionStatus, *, final: bool = False) -> None:
        state = self._state
        state.status = status
        workflow.upsert_search_attributes([sa.SESSION_STATUS.value_set(status)])
        report = state.outputs.get("reporter") or {}
        await workflow.execute_local_activity_method(
            SessionActivities.record,
            SessionRecord(
                session_id=self._input.session_id,
                status=status,
                state=state,
                final=final,
                summary_text=report.get("summary") if isinstance(report, dict) else None,
                final_output={"report": report, "outputs": state.outputs, "decisions": state.decisions}
                if final
                else None,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD_RETRY,
        )
        workflow.set_current_details(
            f"**{status}** · {state.calls} agent calls · {state.tokens} tokens · agents: {', '.join(state.selected)}"
        )

    async def _finish(self, status: SessionStatus) -> SessionState:
        await self._record(status, final=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state
