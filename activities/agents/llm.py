"""Agent calls: one activity per call, through the ``openai`` AsyncOpenAI client against any
OpenAI-compatible endpoint. Temporal owns retries (the client's are off); a 429's Retry-After becomes
the next retry delay. The reply must be JSON valid against the agent's schema: an invalid reply is
retried once with the validation error, then the call fails with a clear, non-retryable message.
Every call is a row in orchestrator_agent_log, keyed so a retried call reuses its row and a call that
already completed is never made again."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import openai
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.agents import store
from core.agents.sessions import AgentCallInput, AgentCallResult, ToolRequest, invalid_reply_details
from core.platform import breakers, errors, telemetry
from core.platform.retry_after import retry_after_delay
from core.platform.schemas import validation_error
from core.platform.settings import Settings

# How every caller (sessions, agent.call steps) retries an LLM call: 429/5xx and lost attempts with
# backoff; an invalid reply (already asked again once inside the call) or a refusal not at all.
LLM_RETRY = errors.retry_policy(initial=timedelta(seconds=1), maximum=timedelta(seconds=60), attempts=6)


def _instructions(data: AgentCallInput) -> str:
    tools = (
        "Call the tools offered when they help; a tool's result or error comes back to you. When you are done, "
        if data.functions
        else ""
    )
    return (
        f"{data.agent.system_prompt}\n\nCapabilities: {', '.join(data.agent.capabilities)}.\n"
        f"{tools}Reply with one JSON object only, valid against this JSON schema:\n"
        + json.dumps(data.agent.output_schema)
    )


# What "auto" tries, in order (see LlmActivities._complete).
AUTO_FORMATS = ["json_schema", "json_object_schema", "json_object"]


def _response_format(mode: str, agent_name: str, schema: dict[str, Any]) -> Any:
    """The request's response_format: the schema itself where the endpoint takes it (``Any``: the
    json_object-with-schema form is llama.cpp's, not in the client's types)."""
    if mode == "json_schema":
        name = "".join(c if c.isalnum() or c in "_-" else "_" for c in agent_name)[:64] or "output"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    if mode == "json_object_schema":  # llama.cpp's server constrains its output to this schema
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _llm_error(exc: openai.APIStatusError) -> ApplicationError:
    if exc.status_code >= 500 or exc.status_code in (408, 409):
        return errors.LLM_UNAVAILABLE.error(f"the LLM endpoint failed ({exc.status_code})")
    return errors.LLM_REJECTED.error(f"the LLM endpoint refused the request ({exc.status_code}): {exc.message}")


class LlmActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        # Per model: the response format an endpoint under "auto" turned out to take (json_object after it
        # refused json_schema once), so the refusal costs one request per process, not one per call.
        self._formats: dict[str, str] = {}
        self._client = (
            AsyncOpenAI(
                base_url=settings.llm_base_url,
                api_key=settings.llm_api_key or "not-needed",
                max_retries=0,  # Temporal retries, with its own backoff and limits
                timeout=settings.llm_timeout_seconds,
            )
            if settings.llm_base_url
            else None
        )

    @activity.defn(name="llm.call_agent")
    async def call_agent(self, data: AgentCallInput) -> AgentCallResult:
        # Heartbeat while waiting on the model, so an attempt lost with a crashed worker is retried
        # after the heartbeat timeout rather than after the (long) call time limit.
        beating = asyncio.create_task(_heartbeat())
        try:
            return await self._call_agent(data)
        finally:
            beating.cancel()

    async def _call_agent(self, data: AgentCallInput) -> AgentCallResult:
        if self._client is None:
            # Unavailable, but waiting will not configure it: not retried.
            raise errors.LLM_UNAVAILABLE.error("no LLM endpoint is configured (TRELLIS_LLM_BASE_URL)", retryable=False)
        done = await self._start_row(data)
        if done is not None:
            return done
        try:
            return await self._call_through_breaker(data)
        except ApplicationError as exc:
            if exc.type != errors.AGENT_OUTPUT_INVALID.type:  # that one has recorded itself
                await self._record_error(data, exc)
            raise

    async def _call_through_breaker(self, data: AgentCallInput) -> AgentCallResult:
        if not data.breaker:
            return await self._converse(data)
        target = f"agent:{data.agent.agent_name}"
        return await breakers.call_through(
            self._engine,
            target,
            breakers.policy_of(self._settings, target),
            lambda: self._converse(data),
            transient=lambda exc: (
                exc.message if isinstance(exc, ApplicationError) and exc.type == errors.LLM_UNAVAILABLE.type else None
            ),
            refuse=lambda admission: errors.CIRCUIT_OPEN.error(
                breakers.refusal_message(target, admission), retryable=False
            ),
        )

    def _model(self, data: AgentCallInput) -> str:
        return data.agent.model or self._settings.llm_model

    async def _converse(self, data: AgentCallInput) -> AgentCallResult:
        """Ask the model, and once more if its reply is not valid against the agent's schema. An acting
        agent's turn (``functions`` offered) may instead answer with tool calls: they are returned as they
        are, for the AgentActing workflow to run."""
        model = self._model(data)
        messages: list[Any] = [
            {"role": "system", "content": _instructions(data)},
            {"role": "user", "content": json.dumps({"action": data.action_type, **data.input}, default=str)},
            *data.conversation,
        ]
        started = time.perf_counter()
        prompt_tokens = completion_tokens = 0
        problem = "no reply"
        cut_by_budget = False
        for round_ in range(2):
            cap = self._settings.llm_max_output_tokens
            limit = min(data.max_tokens or cap, cap)
            reply, usage, finish, asked = await self._complete(model, messages, limit, data)
            prompt_tokens += usage[0]
            completion_tokens += usage[1]
            if asked:
                result = AgentCallResult(
                    output={},
                    tool_calls=asked,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_usd=self._settings.cost_of(model, prompt_tokens, completion_tokens),
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    model=model,
                )
                await self._finish_row(data.call_key, "completed", result, None)
                self._count(data, model, "completed", result)
                return result
            output, problem = self._parse(reply, data.agent.output_schema)
            if output is None and finish == "length":
                cut_by_budget = data.max_tokens is not None and data.max_tokens < cap
                whose = "the token budget's" if cut_by_budget else "the"
                problem = (
                    f"the reply was cut off at {whose} cap of {limit} output tokens (finish_reason length) before "
                    f"it was complete ({problem})"
                )
            if output is not None:
                latency = int((time.perf_counter() - started) * 1000)
                cost = self._settings.cost_of(model, prompt_tokens, completion_tokens)
                result = AgentCallResult(
                    output=output,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_usd=cost,
                    latency_ms=latency,
                    model=model,
                )
                await self._finish_row(data.call_key, "completed", result, None)
                self._count(data, model, "completed", result)
                return result
            if round_ == 0:
                messages += [
                    {"role": "assistant", "content": reply},
                    {
                        "role": "user",
                        "content": f"That reply was not valid: {problem}. Reply again with one JSON "
                        "object that is valid against the schema.",
                    },
                ]
        message = f"agent '{data.agent.agent_name}' replied with invalid output twice; last problem: {problem}"
        failed = AgentCallResult(
            # What the model said, bounded, so a person can see why it was refused (issue 20).
            output={"invalid_reply": reply[:4000], "truncated": len(reply) > 4000},
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=0.0,
            latency_ms=int((time.perf_counter() - started) * 1000),
            model=model,
        )
        await self._finish_row(data.call_key, "invalid_output", failed, message)
        self._count(data, model, "invalid_output", failed)
        raise errors.AGENT_OUTPUT_INVALID.error(
            message,
            # The caller counts these tokens, and ends a session as budget_exceeded when its budget cut
            # the reply off (issue 20).
            invalid_reply_details(prompt_tokens, completion_tokens, cut_by_budget),
        )

    async def _complete(
        self, model: str, messages: list[Any], max_tokens: int | None, data: AgentCallInput
    ) -> tuple[str, tuple[int, int], str | None, list[ToolRequest]]:
        """The reply's text, its (prompt, completion) tokens and its finish_reason. The agent's schema goes to
        the endpoint as TRELLIS_LLM_RESPONSE_FORMAT says. Under "auto" the forms are tried in turn: the
        OpenAI standard json_schema, then json_object with the schema beside it (llama.cpp's server
        constrains its output to that), then plain json_object (the schema is in the prompt too). A form
        the endpoint refuses is asked again at once in the next form (never left to Temporal's retries),
        and remembered for the model, so the refusal costs one request per process, not one per call."""
        configured = self._settings.llm_response_format
        if configured != "auto":
            try:
                return await self._request(model, messages, max_tokens, data, configured)
            except openai.APIStatusError as exc:
                raise _llm_error(exc) from exc
        forms = AUTO_FORMATS[AUTO_FORMATS.index(self._formats.get(model, AUTO_FORMATS[0])) :]
        for mode, fallback in zip(forms, [*forms[1:], None], strict=True):
            try:
                return await self._request(model, messages, max_tokens, data, mode)
            except openai.APIStatusError as exc:
                # Only an error about the format itself: any other refusal is the request's own fault.
                about_format = any(w in str(exc.message).lower() for w in ("response_format", "json_schema", "schema"))
                if fallback is None or not about_format or exc.status_code not in (400, 404, 415, 422, 500, 501):
                    raise _llm_error(exc) from exc
                activity.logger.warning(
                    "the LLM endpoint refused response_format %s for %s (%s); using %s",
                    mode,
                    model,
                    exc.status_code,
                    fallback,
                )
                self._formats[model] = fallback
        raise AssertionError("unreachable: the last form raises or returns")

    async def _request(
        self, model: str, messages: list[Any], max_tokens: int | None, data: AgentCallInput, mode: str
    ) -> tuple[str, tuple[int, int], str | None, list[ToolRequest]]:
        assert self._client is not None
        # With tools offered, the reply is either tool calls or the final JSON (the schema is in the
        # prompt): a response_format would forbid the tool calls on most servers.
        shaped: dict[str, Any] = (
            {"tools": data.functions, "tool_choice": "none" if data.last_turn else "auto"}
            if data.functions
            else {"response_format": _response_format(mode, data.agent.agent_name, data.agent.output_schema)}
        )
        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                **shaped,
            )
        except openai.RateLimitError as exc:
            raise errors.LLM_UNAVAILABLE.error(
                f"the LLM endpoint is rate limiting: {exc.message}",
                next_retry_delay=retry_after_delay(exc.response.headers.get("retry-after")),
            ) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise errors.LLM_UNAVAILABLE.error(f"the LLM endpoint did not answer: {exc}") from exc
        choice = response.choices[0] if response.choices else None
        content = (choice.message.content or "") if choice else ""
        usage = response.usage
        tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        asked = [
            ToolRequest(id=call.id or f"call_{index}", name=call.function.name, arguments=call.function.arguments or "")
            for index, call in enumerate(
                (choice.message.tool_calls or []) if choice and data.functions and not data.last_turn else []
            )
            if getattr(call, "function", None) is not None
        ]
        return content, tokens, (choice.finish_reason if choice else None), asked

    @staticmethod
    def _parse(reply: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        text = reply.strip()
        if text.startswith("```"):  # models like to fence JSON
            text = text.strip("`").removeprefix("json").strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not JSON ({exc.msg} at position {exc.pos})"
        if not isinstance(value, dict):
            return None, "not a JSON object"
        error = validation_error(schema, value)
        return (value, "") if error is None else (None, f"does not match the schema {error}")

    async def _start_row(self, data: AgentCallInput) -> AgentCallResult | None:
        """Open the call's log row, in one round trip: None to go on, or the recorded result when an
        earlier attempt completed this call (it is never made twice)."""
        async with self._engine.begin() as conn:
            return await store.open_call(conn, data)

    @staticmethod
    def _count(data: AgentCallInput, model: str, outcome: str, result: AgentCallResult | None) -> None:
        """Count a call that ended (once: a retry of an ended call returns its row without calling)."""
        meter = activity.metric_meter()
        labels = {"agent": data.agent.agent_name, "model": model}
        telemetry.count(meter, telemetry.LLM_CALLS, labels | {"outcome": outcome})
        if result is not None:
            telemetry.count(meter, telemetry.LLM_TOKENS, labels | {"kind": "prompt"}, result.prompt_tokens)
            telemetry.count(meter, telemetry.LLM_TOKENS, labels | {"kind": "completion"}, result.completion_tokens)
            if outcome == "completed":
                telemetry.observe_cost(meter, labels, result.cost_usd)

    async def _record_error(self, data: AgentCallInput, exc: ApplicationError) -> None:
        """Keep the attempt's error on the call's row; the call ends ``error`` when no attempt follows
        (the error is final, or this was the last attempt the retry policy allows)."""
        last = exc.non_retryable or (
            LLM_RETRY.maximum_attempts > 0 and activity.info().attempt >= LLM_RETRY.maximum_attempts
        )
        async with self._engine.begin() as conn:
            ended = await store.record_call_error(conn, data.call_key, str(exc), last=last)
        if ended:
            self._count(data, self._model(data), "error", None)

    async def _finish_row(self, call_key: str, status: str, result: AgentCallResult, error: str | None) -> None:
        async with self._engine.begin() as conn:
            await store.finish_call(conn, call_key, status, result, error)


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(5)
