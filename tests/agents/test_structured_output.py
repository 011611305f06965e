"""Issue 20: the agent's schema reaches the endpoint (``response_format`` ``json_schema``, the OpenAI
standard), an endpoint that refuses it is asked once more with ``json_object`` and the schema beside it
(llama.cpp's form) and that is remembered,
and a reply cut off by ``max_tokens`` says so instead of "not JSON". Against the scripted OpenAI-protocol
server, which refuses json_schema for one model and cuts replies off on request."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.agents import case, start, until
from tests.support.api import Api
from tests.support.servers import LlmServer
from tests.support.steps import run

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


async def _agent(api: Api, model: str | None = None) -> str:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "agent_name": name,
        "agent_type": "probe",
        "capabilities": ["answering"],
        "system_prompt": f"You are the {name} agent. Answer.",
        "output_schema": SCHEMA,
        **({"model": model} if model else {}),
    }
    response = await api.request("POST", "/api/v1/orchestrator/agents", json=body)
    assert response.status_code == 201, response.text
    return name


def _call(agent: str, case: str) -> list[dict[str, Any]]:
    return [{"name": "ask", "tool": "agent.call", "params": {"agent": agent, "input": {"note": f"[case:{case}]"}}}]


async def test_the_agents_schema_is_sent_as_json_schema(api: Api, llm_server: LlmServer) -> None:
    agent, case = await _agent(api), uuid.uuid4().hex[:8]
    llm_server.script(case, agent, [{"ok": True}])
    done = await run(api, _call(agent, case))
    assert done["status"] == "completed", done["error"]
    [call] = llm_server.calls(case)
    assert call["response_format"] == {"type": "json_schema", "json_schema": {"name": agent, "schema": SCHEMA}}


async def test_an_endpoint_refusing_json_schema_is_asked_with_json_object_once(api: Api, llm_server: LlmServer) -> None:
    agent = await _agent(api, model="refuses-json-schema")
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    llm_server.script(first, agent, [{"ok": True}, {"ok": True}])
    llm_server.script(second, agent, [{"ok": True}])
    done = await run(api, _call(agent, first))
    assert done["status"] == "completed", done["error"]
    calls = llm_server.calls(first)
    # One 500 (llama-cpp-python's answer), not six: asked again at once with the schema beside json_object.
    assert [(c["status"], c["response_format"]) for c in calls] == [
        (500, {"type": "json_schema", "json_schema": {"name": agent, "schema": SCHEMA}}),
        (200, {"type": "json_object", "schema": SCHEMA}),
    ]
    # Remembered for the model: the next call asks that way straight away.
    assert (await run(api, _call(agent, second)))["status"] == "completed"
    assert [c["response_format"] for c in llm_server.calls(second)] == [{"type": "json_object", "schema": SCHEMA}]


async def test_a_reply_cut_off_by_max_tokens_says_so(api: Api, llm_server: LlmServer) -> None:
    agent, case = await _agent(api), uuid.uuid4().hex[:8]
    llm_server.script(case, agent, ["cut-off", "cut-off"])
    done = await run(api, _call(agent, case))
    assert done["status"] == "failed"
    assert "cut off at the cap of" in done["error"] and "finish_reason length" in done["error"], done["error"]


async def test_an_agent_may_name_a_local_servers_long_model_id(api: Api) -> None:
    """llama.cpp's default model id is the model file's path, 110 characters in the run that found this."""
    model = "/root/.cache/llm-models/smollm2/" + "SmolLM2-135M-Instruct-Q8_0-" + "x" * 40 + ".gguf"
    assert len(model) > 100
    name = await _agent(api, model=model)
    stored = await api.request("GET", f"/api/v1/orchestrator/agents/{name}", role="viewer")
    assert stored.json()["model"] == model


async def test_a_reply_cut_off_at_the_budgets_cap_ends_the_session_as_budget_exceeded(
    api: Api, llm_server: LlmServer
) -> None:
    """The session's remaining budget (1,000 tokens) set the cap, below TRELLIS_LLM_MAX_OUTPUT_TOKENS: the
    budget stopped the reply, so the session ends budget_exceeded, with both rounds' tokens counted."""
    c = case()
    llm_server.script(c, "planner", ["cut-off", "cut-off"])
    done = await until(api, (await start(api, c, agents=["planner"], token_budget=1000))["session_id"])
    assert done["session_status"] == "budget_exceeded", done
    assert "the token budget's cap of 1000" in done["status_reason"] and done["tokens_used"] == 300

    # Cut off at the settings' cap instead (a budget far above it): the model's reply failed, not the budget.
    c = case()
    llm_server.script(c, "planner", ["cut-off", "cut-off"])
    done = await until(api, (await start(api, c, agents=["planner"], token_budget=100_000))["session_id"])
    assert done["session_status"] == "failed" and "cut off at the cap of 4096" in done["status_reason"], done


async def test_a_step_runs_token_budget_counts_the_tokens_of_invalid_replies(api: Api, llm_server: LlmServer) -> None:
    """Two invalid rounds use 300 tokens of a 300-token budget: the next agent.call is refused before it
    reaches the model (before, the invalid rounds counted nothing and the call went ahead)."""
    agent, c = await _agent(api), uuid.uuid4().hex[:8]
    llm_server.script(c, agent, ["malformed", "malformed", {"ok": True}])
    steps = [{**_call(agent, c)[0], "name": "first"}, {**_call(agent, c)[0], "name": "second"}]
    done = await run(api, steps, tokenBudget=300, continueOnError=True, maxRetries=0)
    by_name = {s["name"]: s for s in done["steps"]}
    assert by_name["first"]["status"] == "failed" and "invalid output twice" in by_name["first"]["error"]
    assert (
        by_name["second"]["status"] == "failed" and "tokenBudget of 300 tokens is used up" in by_name["second"]["error"]
    )
    assert len(llm_server.calls(c)) == 2
