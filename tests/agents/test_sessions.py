"""Agent sessions against a scripted OpenAI-protocol server on 127.0.0.1 (real HTTP, the real
AsyncOpenAI client inside the activity; nothing mocked)."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from tests.support.agents import case, logs, start, until
from tests.support.api import Api, eventually, make_settings, open_api
from tests.support.servers import LlmServer


async def test_uc3_multi_agent_project_plan(api: Api, llm_server: LlmServer, temporal_client: Client) -> None:
    c = case()
    started = await start(api, c, context={"address": "123 Main St", "service": "HVAC"})
    assert started["session_status"] == "initializing"
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    assert done["active_agents"] == ["planner", "estimator", "resource", "risk", "validator", "reporter"]
    report = done["final_output"]["report"]
    assert report["summary"].startswith("HVAC installation at 123 Main St") and report["total_cost"] == 12500
    outputs = done["final_output"]["outputs"]
    assert outputs["estimator"]["total_cost"] == 12500 and len(outputs["planner"]["phases"]) == 3
    assert done["tokens_used"] == 7 * 150 and abs(done["cost_usd"] - 7 * (100 * 0.001 + 50 * 0.004) / 1000) < 1e-9

    rows = await logs(api, started["session_id"])
    assert [r["agent_name"] for r in rows][:2] == ["orchestrator", "planner"]
    assert sorted(r["agent_name"] for r in rows) == sorted(
        ["orchestrator", "planner", "estimator", "resource", "risk", "validator", "reporter"]
    )
    for row in rows:
        assert row["execution_status"] == "completed" and row["output_data"] and row["input_data"]
        assert row["prompt_tokens"] == 100 and row["completion_tokens"] == 50 and row["latency_ms"] is not None
        assert row["model"] == "gpt-4o-mini" and row["action_type"]
    estimator = next(r for r in rows if r["agent_name"] == "estimator")
    assert estimator["input_data"]["plan"] == outputs["planner"]  # delegated with the planner's output
    reporter_request = llm_server.calls(c, "reporter")[0]
    assert '"estimator"' in reporter_request["messages"][-1]["content"]  # the reporter gets every output

    query = (
        f"WorkflowId = '{started['workflow_id']}' AND TrellisSessionStatus = 'completed' AND TrellisAgents = 'planner'"
    )

    async def findable() -> bool:
        return (await temporal_client.count_workflows(query)).count == 1

    await eventually(findable)


async def test_delegation_runs_estimator_resource_and_risk_in_parallel(api: Api, llm_server: LlmServer) -> None:
    c = case()
    for agent in ("estimator", "resource", "risk"):
        llm_server.script(c, agent, [("slow", 0.6, None)])
    started = await start(api, c)
    assert (await until(api, started["session_id"]))["session_status"] == "completed"
    middle = [llm_server.calls(c, a)[0] for a in ("estimator", "resource", "risk")]
    assert max(r["start"] for r in middle) < min(r["end"] for r in middle)  # all three were in flight together
    planner, validator = llm_server.calls(c, "planner")[0], llm_server.calls(c, "validator")[0]
    assert planner["end"] <= min(r["start"] for r in middle)
    assert validator["start"] >= max(r["end"] for r in middle)


async def test_invalid_reply_is_retried_once_with_the_error(api: Api, llm_server: LlmServer) -> None:
    c = case()
    llm_server.script(c, "planner", ["malformed"])  # then the default, valid reply
    started = await start(api, c, agents=["planner", "reporter"])
    assert (await until(api, started["session_id"]))["session_status"] == "completed"
    second = llm_server.calls(c, "planner")[1]
    assert "That reply was not valid: not JSON" in second["messages"][-1]["content"]
    planner_log = next(r for r in await logs(api, started["session_id"]) if r["agent_name"] == "planner")
    assert planner_log["prompt_tokens"] == 200  # both rounds counted

    c2 = case()
    llm_server.script(c2, "planner", ["malformed", "schema-miss"])
    failed = await until(api, (await start(api, c2, agents=["planner", "reporter"]))["session_id"])
    assert failed["session_status"] == "failed"
    assert failed["tokens_used"] == 300  # both invalid rounds were spent (they used to count 0)
    [refused] = [r for r in await logs(api, failed["session_id"]) if r["agent_name"] == "planner"]
    assert refused["output_data"]["invalid_reply"] == '{"unexpected": true}'  # what the model said, kept
    assert (
        "invalid output twice" in failed["status_reason"]
        and "'phases' is a required property" in failed["status_reason"]
    )
    assert len(llm_server.calls(c2, "reporter")) == 0


async def test_429_and_500_are_retried_by_temporal(api: Api, llm_server: LlmServer) -> None:
    c = case()
    llm_server.script(c, "estimator", ["429"])
    llm_server.script(c, "risk", ["500"])
    started = await start(api, c, agents=["planner", "estimator", "risk", "reporter"])
    assert (await until(api, started["session_id"]))["session_status"] == "completed"
    first, second = llm_server.calls(c, "estimator")
    assert first["status"] == 429 and second["start"] - first["end"] >= 0.9  # Retry-After: 1
    assert [r["status"] for r in llm_server.calls(c, "risk")] == [500, 200]


async def test_approval_approved_rejected_with_revision_and_timed_out(api: Api, llm_server: LlmServer) -> None:
    c = case()
    started = await start(api, c, agents=["planner", "reporter"], approval_required=True)
    waiting = await until(api, started["session_id"], ("awaiting_approval",))
    assert waiting["completed_ts"] is None
    assert (
        await api.request(
            "POST",
            f"/api/v1/orchestrator/session/{started['session_id']}/approval",
            role="operator",
            json={"decision": "approve"},
        )
    ).status_code == 403
    approved = await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{started['session_id']}/approval",
        role="approver",
        json={"decision": "approve", "comment": "ship it"},
    )
    assert approved.status_code == 200
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed"
    assert done["final_output"]["decisions"][0]["actor"] == "approver-user"
    again = await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{started['session_id']}/approval",
        role="approver",
        json={"decision": "approve"},
    )
    assert again.status_code == 409 and again.json()["error"] == "not_awaiting_approval"

    c2 = case()
    revised = await start(api, c2, agents=["planner", "reporter"], approval_required=True)
    await until(api, revised["session_id"], ("awaiting_approval",))
    await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{revised['session_id']}/approval",
        role="approver",
        json={"decision": "reject", "comment": "add a contingency budget"},
    )
    await until(api, revised["session_id"], ("awaiting_approval",))
    reporter_calls = llm_server.calls(c2, "reporter")
    assert len(reporter_calls) == 2 and "add a contingency budget" in reporter_calls[1]["messages"][-1]["content"]
    await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{revised['session_id']}/approval",
        role="approver",
        json={"decision": "reject", "comment": "still no"},
    )
    rejected = await until(api, revised["session_id"])
    assert rejected["session_status"] == "failed" and rejected["status_reason"] == "rejected: still no"

    c3 = case()
    timing = await start(api, c3, agents=["planner"], approval_required=True, approval_timeout_seconds=2)
    timed_out = await until(api, timing["session_id"])
    assert timed_out["session_status"] == "failed" and "approval timed out after 2s" in timed_out["status_reason"]


async def test_budget_exceeded_stops_the_session(api: Api, llm_server: LlmServer) -> None:
    c = case()
    started = await start(api, c, token_budget=400)
    done = await until(api, started["session_id"])
    assert done["session_status"] == "budget_exceeded"
    assert "token budget of 400 reached" in done["status_reason"]
    assert llm_server.calls(c, "validator") == [] and llm_server.calls(c, "reporter") == []
    assert done["tokens_used"] == 750  # selection + planner + three parallel agents


async def test_custom_agents_and_validation(api: Api, llm_server: LlmServer) -> None:
    listing = await api.request("GET", "/api/v1/orchestrator/agents?active=true", role="viewer")
    names = {a["agent_name"] for a in listing.json()["items"]}
    assert {"planner", "estimator", "resource", "risk", "analyzer", "validator", "reporter"} <= names
    name = f"permits-{uuid.uuid4().hex[:6]}"
    body = {
        "agent_name": name,
        "agent_type": "permits",
        "capabilities": ["permit research"],
        "system_prompt": f"You are the {name} agent. List the permits needed.",
        "output_schema": {"type": "object", "properties": {"permits": {"type": "array"}}, "required": ["permits"]},
    }
    assert (await api.request("POST", "/api/v1/orchestrator/agents", json=body)).status_code == 201
    assert (await api.request("POST", "/api/v1/orchestrator/agents", json=body)).status_code == 409
    bad = await api.request(
        "POST",
        "/api/v1/orchestrator/agents",
        json={**body, "agent_name": "x-bad", "output_schema": {"type": "nonsense"}},
    )
    assert bad.status_code == 422 and "not a valid JSON schema" in bad.json()["detail"]
    c = case()
    llm_server.script(c, name, [{"permits": ["mechanical permit"]}])
    started = await start(api, c, agents=["planner", name, "reporter"])
    done = await until(api, started["session_id"])
    assert done["final_output"]["outputs"][name] == {"permits": ["mechanical permit"]}
    unknown = await api.request(
        "POST", "/api/v1/orchestrator/session", role="operator", json={"goal": "something", "agents": ["wizard"]}
    )
    assert unknown.status_code == 422 and "no active agent named wizard" in unknown.json()["detail"]
    deactivated = await api.request("DELETE", f"/api/v1/orchestrator/agents/{name}")
    assert deactivated.json()["active_flag"] is False


async def test_no_llm_endpoint_gives_a_clear_error(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> None:
    lifespan, client = await open_api(make_settings(postgres_url, temporal_address, task_queue, llm_base_url=None))
    try:
        response = await Api(client).request(
            "POST", "/api/v1/orchestrator/session", role="operator", json={"goal": "plan something"}
        )
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    assert response.status_code == 503 and "TRELLIS_LLM_BASE_URL" in response.json()["detail"]


async def test_long_sessions_continue_as_new_without_losing_state(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None, temporal_client: Client
) -> None:
    lifespan, client = await open_api(
        make_settings(postgres_url, temporal_address, task_queue, session_history_limit=20)
    )
    api = Api(client)
    try:
        started = await start(api, case())
        done = await until(api, started["session_id"])
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    assert done["session_status"] == "completed" and done["state"]["runs"] >= 2
    assert set(done["final_output"]["outputs"]) == {"planner", "estimator", "resource", "risk", "validator", "reporter"}
    runs = [w async for w in temporal_client.list_workflows(f"WorkflowId = '{started['workflow_id']}'")]
    assert len(runs) == done["state"]["runs"]


async def test_cancel_a_running_session(api: Api, llm_server: LlmServer) -> None:
    c = case()
    llm_server.script(c, "planner", [("slow", 2.0, None)])
    started = await start(api, c, agents=["planner", "reporter"])
    await until(api, started["session_id"], ("running",))
    cancelled = await api.request(
        "POST", f"/api/v1/orchestrator/session/{started['session_id']}/cancel", role="operator"
    )
    assert cancelled.status_code == 200
    done = await until(api, started["session_id"])
    assert done["session_status"] == "cancelled" and done["status_reason"] == "cancelled on request"
    assert done["completed_ts"] is not None
    again = await api.request("POST", f"/api/v1/orchestrator/session/{started['session_id']}/cancel", role="operator")
    assert again.status_code == 409
