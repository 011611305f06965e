"""An agent call with tools (issue 25), workflow ``AgentActing``: a child of the session or step run that
asked. Its loop: ask the model (one activity per turn, so a completed turn is never asked again); run the
tool calls it asks for, concurrently, each its own activity under the exactly-once ledger and the
approval policy; send each result back under the id of the call it answers; until the model answers
with its output, or a bound is reached.

An approval the policy requires is a ``PolicyApproval`` child workflow per tool call: the call waits on
its own approval, so decisions taken in any order each reach the call they belong to.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.agents.llm import LLM_RETRY, LlmActivities
    from activities.steps.acting import ActingActivities, Delegated, OfferRequest
    from core.agents.sessions import ActingInput, AgentCallInput, AgentCallResult, ToolRequest
    from core.platform import errors
    from core.platform.public_text import PublicText
    from core.policy.contracts import ApprovalOutcome
    from core.steps.acting import MAX_AGENT_DEPTH, AgentToolCall, AgentToolOutcome, OfferedTool
    from core.steps.tools import infrastructure_retry
    from workflows.policy.approval import PolicyApprovalWorkflow, approval_workflow_id

_RESULT_CHARS = 8000  # what a tool's result may take of the model's context


def acting_workflow_id(call_key: str) -> str:
    return f"acting-{call_key}"


@workflow.defn(name="AgentActing")
class AgentActingWorkflow:
    @workflow.init
    def __init__(self, data: ActingInput) -> None:
        self._data = data
        self._made = 0
        self._invalid = 0
        self._totals = [0, 0, 0.0]  # prompt tokens, completion tokens, cost: the model's turns and agents asked

    @workflow.run
    async def run(self, data: ActingInput) -> AgentCallResult:
        call = data.call
        limits = call.agent.tool_limits
        offer = await workflow.execute_local_activity_method(
            ActingActivities.offer,
            OfferRequest(tools=call.agent.tools),
            start_to_close_timeout=timedelta(seconds=30),
        )
        if offer.problem is not None:
            raise errors.ACTION_INVALID.error(f"agent '{call.agent.agent_name}': {offer.problem}")
        tools = {t.function: t for t in offer.tools}
        conversation: list[dict[str, Any]] = []
        totals = self._totals
        for turn in range(limits.rounds):
            remaining = self._tokens_left()
            result = await workflow.execute_activity_method(
                LlmActivities.call_agent,
                call.model_copy(
                    update={
                        "call_key": call.call_key if turn == 0 else f"{call.call_key}:t{turn}",
                        "functions": [t.definition for t in offer.tools],
                        "conversation": conversation,
                        "max_tokens": remaining,
                        "last_turn": turn == limits.rounds - 1,
                    }
                ),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=LLM_RETRY,
                summary=PublicText(f"{call.agent.agent_name}: turn {turn + 1}"),
            )
            totals[0] += result.prompt_tokens
            totals[1] += result.completion_tokens
            totals[2] += result.cost_usd
            if not result.tool_calls:
                return result.model_copy(
                    update={
                        "prompt_tokens": totals[0],
                        "completion_tokens": totals[1],
                        "cost_usd": round(totals[2], 6),
                        "tool_calls_made": self._made,
                    }
                )
            conversation.append(
                {
                    "role": "assistant",
                    # Empty, not null: llama-cpp-python's server refuses a null content (the OpenAI API
                    # takes either).
                    "content": "",
                    "tool_calls": [
                        {"id": r.id, "type": "function", "function": {"name": r.name, "arguments": r.arguments}}
                        for r in result.tool_calls
                    ],
                }
            )
            answers = await asyncio.gather(
                *(self._answer(turn, index, request, tools) for index, request in enumerate(result.tool_calls))
            )
            conversation += [
                {"role": "tool", "tool_call_id": request.id, "content": answer}
                for request, answer in zip(result.tool_calls, answers, strict=True)
            ]
        raise AssertionError("unreachable: the last turn answers (its tool calls are not taken) or raises")

    async def _answer(self, turn: int, index: int, request: ToolRequest, tools: dict[str, OfferedTool]) -> str:
        """The text the model gets back for one of its tool calls."""
        data = self._data
        limits = data.call.agent.tool_limits
        offered = tools.get(request.name)
        if offered is None:
            return self._error(f"there is no tool '{request.name}'; the tools are: {', '.join(sorted(tools))}", True)
        if index >= limits.per_turn:
            return self._error(f"at most {limits.per_turn} tool calls per turn; call it again in the next turn", False)
        left = limits.per_call - self._made
        if data.tool_calls_left is not None:
            left = min(left, data.tool_calls_left - self._made)
        if left <= 0:
            return self._error("the tool call limit is reached; answer with what you have", False)
        self._made += 1
        call = AgentToolCall(
            key=f"{data.call.call_key}:t{turn}:c{index}",
            session_id=data.call.session_id,
            agent=data.call.agent.agent_name,
            caller=data.caller,
            request_id=request.id,
            offered=offered,
            arguments=request.arguments,
            timeout_ms=limits.timeout_seconds * 1000,
        )
        run = self._check if offered.tool == "agent.call" else self._run
        outcome = await run(call)
        if outcome.status == "approval_required":
            assert outcome.approval is not None
            decided: ApprovalOutcome = await workflow.execute_child_workflow(
                PolicyApprovalWorkflow.run,
                outcome.approval,
                id=approval_workflow_id(outcome.approval.approval_id),
            )
            if decided.status != "approved":
                return self._error(f"{offered.tool} was not approved: {decided.message or decided.status}", False)
            outcome = await run(call.model_copy(update={"approval_id": outcome.approval.approval_id}))
        if outcome.status == "allowed":
            return await self._ask(call, outcome.result)
        if outcome.status == "completed":
            text = json.dumps(outcome.result, default=str)
            return text if len(text) <= _RESULT_CHARS else text[:_RESULT_CHARS] + " …(truncated)"
        return self._error(outcome.error or outcome.status, outcome.status == "invalid")

    def _tokens_left(self) -> int | None:
        cap = self._data.call.max_tokens
        return None if cap is None else max(1, cap - int(self._totals[0] + self._totals[1]))

    async def _check(self, call: AgentToolCall) -> AgentToolOutcome:
        """An agent.call's arguments and policy (the asked agent runs after, in ``_ask``)."""
        return await workflow.execute_activity_method(
            ActingActivities.delegate,
            call,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=infrastructure_retry(),
            summary=PublicText(f"{call.agent}: may it ask {call.offered.fixed.get('agent')}"),
        )

    async def _ask(self, call: AgentToolCall, params: dict[str, Any]) -> str:
        """Another agent, asked by this one: its own call (a child AgentActing when it has tools, else one
        model call), its tokens counted in this call's, its answer recorded in the agent log and returned
        to the model. Its failure is the model's to hear, not this call's."""
        asked = call.offered.agent
        assert asked is not None  # an agent.call is offered with the agent it asks
        started = workflow.now()
        output: dict[str, Any] | None = None
        error: str | None = None
        if self._data.depth + 1 > MAX_AGENT_DEPTH:
            error = f"agents may ask agents at most {MAX_AGENT_DEPTH} deep; answer without asking {asked.agent_name}"
        else:
            asking = AgentCallInput(
                session_id=call.session_id,
                agent=asked,
                action_type=f"asked by {call.agent}",
                input=params.get("input") or {},
                call_key=f"{call.key}:ask",
                max_tokens=self._tokens_left(),
                breaker=self._data.call.breaker,
            )
            left = None if self._data.tool_calls_left is None else self._data.tool_calls_left - self._made
            try:
                result = await ask_agent(
                    ActingInput(
                        call=asking, caller=self._data.caller, tool_calls_left=left, depth=self._data.depth + 1
                    ),
                    model_time=timedelta(minutes=5),
                    summary=f"{call.agent} asks {asked.agent_name}",
                )
                self._made += result.tool_calls_made
                self._totals[0] += result.prompt_tokens
                self._totals[1] += result.completion_tokens
                self._totals[2] += result.cost_usd
                output = result.output
            except (ActivityError, ChildWorkflowError) as err:
                cause = err.cause.cause if isinstance(err.cause, ActivityError) else err.cause
                error = f"{asked.agent_name} could not answer: {getattr(cause, 'message', None) or cause or err}"
        await workflow.execute_activity_method(
            ActingActivities.delegated,
            Delegated(
                call=call,
                params=params,
                output=output,
                error=error,
                latency_ms=int((workflow.now() - started).total_seconds() * 1000),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=infrastructure_retry(),
        )
        if error is not None:
            return self._error(error, False)
        text = json.dumps(output, default=str)
        return text if len(text) <= _RESULT_CHARS else text[:_RESULT_CHARS] + " …(truncated)"

    async def _run(self, call: AgentToolCall) -> AgentToolOutcome:
        return await workflow.execute_activity_method(
            ActingActivities.tool,
            call,
            start_to_close_timeout=timedelta(milliseconds=call.timeout_ms) + timedelta(seconds=30),
            retry_policy=infrastructure_retry(),
            summary=PublicText(f"{call.agent}: {call.offered.tool}"),
        )

    def _error(self, message: str, invalid: bool) -> str:
        """An error the model can correct; past the agent's bound of invalid calls, the call fails."""
        if invalid:
            self._invalid += 1
            if self._invalid > self._data.call.agent.tool_limits.invalid:
                raise errors.AGENT_OUTPUT_INVALID.error(
                    f"agent '{self._data.call.agent.agent_name}' made more than "
                    f"{self._data.call.agent.tool_limits.invalid} invalid tool calls; last: {message}"
                )
        return json.dumps({"error": message})


async def ask_agent(acting: ActingInput, *, model_time: timedelta, summary: str) -> AgentCallResult:
    """One agent call, as a step's ``agent.call`` or an agent asking another makes it: an agent with tools
    runs its loop as the ``AgentActing`` child, any other is one model call (within ``model_time``)."""
    asking = acting.call
    if asking.agent.tools:
        result: AgentCallResult = await workflow.execute_child_workflow(
            AgentActingWorkflow.run, acting, id=acting_workflow_id(asking.call_key)
        )
        return result
    return await workflow.execute_activity_method(
        LlmActivities.call_agent,
        asking,
        start_to_close_timeout=model_time,
        heartbeat_timeout=timedelta(seconds=20),
        retry_policy=LLM_RETRY,
        summary=PublicText(summary),
    )
