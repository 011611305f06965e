"""Agents that act (issue 25): an agent with tools runs the model's loop in the AgentActing workflow, each
tool call its own activity under the exactly-once ledger and the approval policy, each result sent back
under the id of the call it answers. The model is the scripted OpenAI-protocol server, replying with
tool calls; the tools are the registry's (an entity, an MCP server's tool, http.request to the test
receiver)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from core.platform.database import make_engine
from tests.support.agents import case, logs, start, until
from tests.support.api import Api, as_person, eventually, make_settings, open_api
from tests.support.processes import spawn_worker, worker_env
from tests.support.servers import LlmServer, WebhookServer

OUTPUT = {"type": "object", "properties": {"done": {"type": "boolean"}}, "required": ["done"]}


async def agent(api: Api, name: str, tools: list[dict[str, Any]], **limits: Any) -> None:
    body = {
        "agent_name": name,
        "agent_type": "clerk",
        "capabilities": ["records things"],
        "system_prompt": f"You are the {name} agent. Use the tools to do what the goal asks.",
        "output_schema": OUTPUT,
        "tools": tools,
        "tool_limits": limits or {},
    }
    response = await api.request("POST", "/api/v1/orchestrator/agents", json=body)
    assert response.status_code == 201, response.text


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def tool_messages(request: dict[str, Any]) -> dict[str, Any]:
    """The tool results a model request carried, by the id of the call each answers."""
    return {m["tool_call_id"]: json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"}


async def policy(api: Api, name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.request("PUT", f"/api/v1/policies/{name}", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_an_agent_acts_once_across_a_worker_killed_mid_loop(
    fresh_database: str, temporal_address: str, llm_server: LlmServer, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    tally = tmp_path / "tally.txt"
    queue = f"trellis-acting-crash-{uuid.uuid4().hex[:8]}"
    mcp = {
        "testmcp": {
            "command": [sys.executable, "-m", "tests.support.mcp_server"],
            "env": {"TRELLIS_TEST_MCP_TALLY": str(tally)},
        }
    }
    env = worker_env(
        fresh_database,
        temporal_address,
        queue,
        llm_base_url=llm_server.base_url,
        llm_api_key="k",
        webhook_allow_hosts="127.0.0.1",
        mcp_servers=json.dumps(mcp),
    )
    worker = await spawn_worker(env, tmp_path / "worker.log")
    settings = make_settings(fresh_database, temporal_address, queue, llm_base_url=llm_server.base_url, mcp_servers=mcp)
    lifespan, client = await open_api(settings)
    api = Api(client)
    c, name, tag = case(), unique("clerk"), uuid.uuid4().hex[:10]
    await agent(
        api,
        name,
        [
            {"tool": "entity.create"},
            {"tool": "testmcp.tally"},
            {"tool": "http.request", "fixed": {"url": webhook_server.url("/ok"), "method": "POST"}},
        ],
    )
    llm_server.script(
        c,
        name,
        [
            {
                "tool_calls": [
                    {
                        "id": "mk",
                        "name": "entity_create",
                        "arguments": {"entity_type": "customer", "name": f"Acme {tag}"},
                    },
                    {"id": "tally", "name": "testmcp_tally", "arguments": {"tag": tag}},
                ]
            },
            {"tool_calls": [{"name": "http_request", "arguments": {"path": tag, "body": {"tag": tag}}}]},
            ("slow", 4.0, {"done": True}),  # the worker dies while the model writes its answer
            {"done": True},
        ],
    )
    engine = make_engine(fresh_database, pool_size=2)
    try:
        started = await start(api, c, agents=[name])
        await eventually(lambda: asyncio.sleep(0, result=len(llm_server.calls(c, name)) >= 2 or None), attempts=400)
        await asyncio.sleep(1.5)  # the third turn is in flight
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        worker = await spawn_worker(env, tmp_path / "worker.log")
        done = await until(api, started["session_id"])
        async with engine.connect() as conn:
            created = (
                await conn.execute(text("SELECT count(*) FROM app.d_entity WHERE name = :n"), {"n": f"Acme {tag}"})
            ).scalar_one()
        rows = await logs(api, started["session_id"])
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
        await engine.dispose()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    assert done["session_status"] == "completed", done["status_reason"]
    assert done["final_output"]["outputs"][name] == {"done": True}
    assert created == 1
    assert tally.read_text().split() == [tag]  # the MCP tool ran once
    assert len(webhook_server.at(f"/ok/{tag}")) == 1  # the HTTP request was sent once
    turns = llm_server.calls(c, name)
    answered = [sum(m["role"] == "tool" for m in t["messages"]) for t in turns]
    # Turns 1 and 2 completed before the kill and were not asked again; the third was in flight and was
    # asked again (the server may not record the request the kill cut off).
    assert answered.count(0) == 1 and answered.count(2) == 1 and answered.count(3) in (1, 2), answered
    # Each result went back under its own call's id, and the model was offered the three tools.
    assert {t["function"]["name"] for t in turns[0]["tools"]} == {"entity_create", "testmcp_tally", "http_request"}
    results = tool_messages(turns[1])
    assert results["mk"]["name"] == f"Acme {tag}"
    assert results["tally"]["result"] in (1, {"result": 1}), results["tally"]
    tools = [r for r in rows if r["action_type"] == "tool_call"]
    assert sorted(r["input_data"]["tool"] for r in tools) == ["entity.create", "http.request", "testmcp.tally"]
    assert all(r["execution_status"] == "completed" and r["latency_ms"] is not None for r in tools)
    http = next(r for r in tools if r["input_data"]["tool"] == "http.request")
    assert http["input_data"]["arguments"]["url"] == webhook_server.url(f"/ok/{tag}")  # the host is the admin's


async def test_an_invalid_argument_is_corrected_on_the_second_try(api: Api, llm_server: LlmServer) -> None:
    c, name, tag = case(), unique("clerk"), uuid.uuid4().hex[:8]
    await agent(api, name, [{"tool": "entity.create", "fixed": {"entity_type": "customer"}}])
    llm_server.script(
        c,
        name,
        [
            {"tool_calls": [{"id": "first", "name": "entity_create", "arguments": {"name": 42}}]},
            {"tool_calls": [{"id": "second", "name": "entity_create", "arguments": {"name": f"Fixed {tag}"}}]},
            {"done": True},
        ],
    )
    started = await start(api, c, agents=[name])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    turns = llm_server.calls(c, name)
    told = tool_messages(turns[1])["first"]
    assert "do not match the tool's schema" in told["error"] and "name" in told["error"]
    assert tool_messages(turns[2])["second"]["name"] == f"Fixed {tag}"
    statuses = [
        r["execution_status"] for r in await logs(api, started["session_id"]) if r["action_type"] == "tool_call"
    ]
    assert sorted(statuses) == ["completed", "invalid"]


async def test_a_model_cannot_choose_the_host_or_a_secret(
    api: Api, llm_server: LlmServer, webhook_server: WebhookServer
) -> None:
    """``url``, ``sign`` and ``headers`` are not offered, and written anyway they are an error to correct."""
    c, name = case(), unique("clerk")
    await agent(api, name, [{"tool": "http.request", "fixed": {"url": webhook_server.url("/ok")}}], invalid=1)
    llm_server.script(
        c,
        name,
        [
            {"tool_calls": [{"id": "a", "name": "http_request", "arguments": {"url": "http://169.254.169.254/x"}}]},
            {"tool_calls": [{"id": "b", "name": "http_request", "arguments": {"path": "../admin"}}]},
            {"done": True},
        ],
    )
    started = await start(api, c, agents=[name])
    done = await until(api, started["session_id"])
    turns = llm_server.calls(c, name)
    assert "url" not in turns[0]["tools"][0]["function"]["parameters"]["properties"]
    assert "sign" not in turns[0]["tools"][0]["function"]["parameters"]["properties"]
    assert "error" in tool_messages(turns[1])["a"]
    # The bound of invalid calls (1) is passed on the second: the call fails, saying why.
    assert done["session_status"] == "failed"
    assert "invalid tool calls" in done["status_reason"] and "not allowed" in done["status_reason"]
    assert webhook_server.at("/ok/admin") == [] and not [h for h in webhook_server.hits if "169.254" in h.path]


async def test_three_parallel_calls_two_approvals_decided_in_reverse_order(
    api: Api, llm_server: LlmServer, webhook_server: WebhookServer
) -> None:
    c, name, tag = case(), unique("clerk"), uuid.uuid4().hex[:8]
    await agent(
        api,
        name,
        [
            {"tool": "entity.create"},
            {"tool": "http.request", "fixed": {"url": webhook_server.url("/ok"), "method": "POST"}},
        ],
    )
    await policy(
        api,
        unique("calls-need-approval"),
        {
            "description": "outside calls of this agent are approved by an approver",
            "subjects": {"agents": [name]},
            "target": {"kind": "tool", "tools": ["http.request"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}, "count": 1},
        },
    )
    llm_server.script(
        c,
        name,
        [
            {
                "tool_calls": [
                    {
                        "id": "make",
                        "name": "entity_create",
                        "arguments": {"entity_type": "customer", "name": f"P {tag}"},
                    },
                    {"id": "first", "name": "http_request", "arguments": {"path": f"{tag}-a"}},
                    {"id": "second", "name": "http_request", "arguments": {"path": f"{tag}-b"}},
                ]
            },
            {"done": True},
        ],
    )
    started = await start(api, c, agents=[name])

    async def two_pending() -> list[dict[str, Any]] | None:
        response = await api.request("GET", "/api/v1/approvals?status=pending&limit=200", role="viewer")
        mine = [a for a in response.json()["items"] if a["subject"] == name]
        return mine if len(mine) == 2 else None

    pending = await eventually(two_pending, attempts=300)
    by_path = {a["arguments"]["url"].rsplit("/", 1)[1]: a for a in pending}
    first, second = by_path[f"{tag}-a"], by_path[f"{tag}-b"]
    # Decided in reverse order: the second call's approval first (approved), then the first's (rejected).
    ok = await api.request(
        "POST", f"/api/v1/approvals/{second['id']}/decision", role="approver", json={"decision": "approve"}
    )
    assert ok.status_code == 200, ok.text
    await eventually(lambda: asyncio.sleep(0, result=webhook_server.at(f"/ok/{tag}-b") or None), attempts=200)
    no = await api.request(
        "POST",
        f"/api/v1/approvals/{first['id']}/decision",
        role="approver",
        json={"decision": "reject", "comment": "not that one"},
    )
    assert no.status_code == 200, no.text
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    results = tool_messages(llm_server.calls(c, name)[1])
    assert results["make"].get("name") == f"P {tag}", results["make"]
    assert results["second"]["status"] == 200 and results["second"]["body"] == {"ok": True}
    assert "not approved" in results["first"]["error"] and "not that one" in results["first"]["error"]
    assert webhook_server.at(f"/ok/{tag}-a") == [] and len(webhook_server.at(f"/ok/{tag}-b")) == 1
    # The inbox showed both while they waited; the decision log now has their outcomes.
    decisions = await api.request("GET", f"/api/v1/policy-decisions?subject={name}", role="viewer")
    outcomes = sorted(d["outcome"] for d in decisions.json()["items"])
    assert outcomes == ["approved", "rejected"]


async def test_a_policy_denies_a_tool_to_one_agent_and_allows_it_to_another(api: Api, llm_server: LlmServer) -> None:
    c, tag = case(), uuid.uuid4().hex[:8]
    denied, allowed = unique("intern"), unique("senior")
    for who in (denied, allowed):
        await agent(api, who, [{"tool": "entity.create", "fixed": {"entity_type": "customer"}}])
        llm_server.script(
            c,
            who,
            [
                {"tool_calls": [{"id": "mk", "name": "entity_create", "arguments": {"name": f"{who} {tag}"}}]},
                {"done": True},
            ],
        )
    deny = unique("interns-create-nothing")
    allow = unique("seniors-create")
    await policy(
        api,
        deny,
        {
            "subjects": {"agents": [denied]},
            "target": {"kind": "tool", "tools": ["entity.*"]},
            "effect": "deny",
            "description": "interns do not create records",
        },
    )
    await policy(
        api,
        allow,
        {"subjects": {"agents": [allowed]}, "target": {"kind": "tool", "tools": ["entity.create"]}, "effect": "allow"},
    )
    started = await start(api, c, agents=[denied, allowed])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    told_denied = tool_messages(llm_server.calls(c, denied)[1])["mk"]
    told_allowed = tool_messages(llm_server.calls(c, allowed)[1])["mk"]
    assert "denied by policy" in told_denied["error"] and "interns do not create records" in told_denied["error"]
    assert told_allowed["name"] == f"{allowed} {tag}"
    # The decision log says who was allowed or denied what, under which policy and version.
    log = (await api.request("GET", f"/api/v1/policy-decisions?policy={deny}", role="viewer")).json()["items"]
    assert [(d["subject"], d["effect"], d["outcome"], d["policy_version"], d["target"]) for d in log] == [
        (denied, "deny", "denied", 1, "entity.create")
    ]
    log = (await api.request("GET", f"/api/v1/policy-decisions?policy={allow}", role="viewer")).json()["items"]
    assert [(d["subject"], d["outcome"]) for d in log] == [(allowed, "allowed")]
    rows = await logs(api, started["session_id"])
    assert sorted(r["execution_status"] for r in rows if r["action_type"] == "tool_call") == ["completed", "denied"]


async def test_an_agents_tools_are_checked_when_it_is_saved(api: Api) -> None:
    base = {"agent_type": "clerk", "capabilities": ["x"], "system_prompt": "x", "output_schema": OUTPUT}
    for tools, problem in (
        ([{"tool": "no.such"}], "unknown tool"),
        ([{"tool": "http.request"}], "fixed.url"),
        ([{"tool": "entity.create", "fixed": {"colour": "red"}}], "takes no parameter colour"),
        ([{"tool": "agent.call"}], "needs fixed.agent"),
        ([{"tool": "workflow.run"}], "not a tool an agent calls"),
    ):
        response = await api.request(
            "POST", "/api/v1/orchestrator/agents", json={**base, "agent_name": unique("a"), "tools": tools}
        )
        assert response.status_code == 422 and problem in response.text, response.text
    person = await api.request("GET", "/api/v1/approvals", role=None, headers=as_person("dave"))
    assert person.status_code == 200


async def test_the_last_turn_asks_for_an_answer_not_more_tools(api: Api, llm_server: LlmServer) -> None:
    c, name, tag = case(), unique("clerk"), uuid.uuid4().hex[:8]
    await agent(api, name, [{"tool": "entity.create", "fixed": {"entity_type": "customer"}}], rounds=2)
    again = {"tool_calls": [{"name": "entity_create", "arguments": {"name": f"More {tag}"}}]}
    llm_server.script(c, name, [again, again, {"done": True}])
    started = await start(api, c, agents=[name])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    turns = llm_server.calls(c, name)
    assert [t["tool_choice"] for t in turns] == ["auto", "none", "none"]  # the last turn, and its repair round
    made = [r for r in await logs(api, started["session_id"]) if r["action_type"] == "tool_call"]
    assert len(made) == 1  # the tool call the last turn asked for anyway was not run


def ask(agent_name: str, call_id: str, c: str, **input: Any) -> dict[str, Any]:
    """A model's tool call asking another agent (its function is ask_<name>); the case marker rides along
    so that the scripted server answers the asked agent from its own script."""
    return {"id": call_id, "name": f"ask_{agent_name}", "arguments": {"input": {"note": f"[case:{c}]", **input}}}


async def test_an_agent_asks_another_agent(api: Api, llm_server: LlmServer) -> None:
    """Another agent is a tool: agent.call with the asked agent fixed by the admin. The asked agent's answer
    goes back to the call that asked, is recorded in the agent log, and its tokens count in the session."""
    c, lead, helper = case(), unique("lead"), unique("pricer")
    await agent(api, helper, [])
    await agent(api, lead, [{"tool": "agent.call", "fixed": {"agent": helper}}])
    llm_server.script(c, lead, [{"tool_calls": [ask(helper, "price", c, item="boiler")]}, {"done": True}])
    llm_server.script(c, helper, [{"done": True, "price": 4200}])
    started = await start(api, c, agents=[lead])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    turns = llm_server.calls(c, lead)
    offered = turns[0]["tools"][0]["function"]
    assert offered["name"] == f"ask_{helper}" and set(offered["parameters"]["properties"]) == {"input"}
    assert tool_messages(turns[1])["price"] == {"done": True, "price": 4200}
    asked = llm_server.calls(c, helper)
    assert len(asked) == 1 and json.loads(asked[0]["messages"][1]["content"])["item"] == "boiler"
    rows = await logs(api, started["session_id"])
    made = [r for r in rows if r["action_type"] == "tool_call"]
    assert [(r["input_data"]["tool"], r["execution_status"]) for r in made] == [("agent.call", "completed")]
    assert made[0]["input_data"]["arguments"]["agent"] == helper
    assert made[0]["output_data"] == {"done": True, "price": 4200}
    assert [r["agent_name"] for r in rows if r["action_type"] != "tool_call"].count(helper) == 1


async def test_agents_asking_each_other_in_a_loop_stop_at_the_depth_bound(api: Api, llm_server: LlmServer) -> None:
    """a asks b, b asks a, and that a asking b again is refused (depth 2 asks no further): told to the model,
    which answers; the loop unwinds with every call answered."""
    c, a, b = case(), unique("ping"), unique("pong")
    await agent(api, a, [])  # saved first without tools, then again naming b: agents name each other freely
    await agent(api, b, [{"tool": "agent.call", "fixed": {"agent": a}}])
    replaced = await api.request(
        "PUT",
        f"/api/v1/orchestrator/agents/{a}",
        json={
            "agent_type": "clerk",
            "capabilities": ["records things"],
            "system_prompt": f"You are the {a} agent. Use the tools to do what the goal asks.",
            "output_schema": OUTPUT,
            "tools": [{"tool": "agent.call", "fixed": {"agent": b}}],
        },
    )
    assert replaced.status_code == 200, replaced.text
    llm_server.script(
        c,
        a,
        [{"tool_calls": [ask(b, "a0", c)]}, {"tool_calls": [ask(b, "a2", c)]}, {"done": True}, {"done": True}],
    )
    llm_server.script(c, b, [{"tool_calls": [ask(a, "b1", c)]}, {"done": True}])
    started = await start(api, c, agents=[a])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    refused = tool_messages(llm_server.calls(c, a)[2])["a2"]
    assert "at most 2 deep" in refused["error"]
    assert len(llm_server.calls(c, b)) == 2  # b was asked once (two turns); the third ask never reached it
    statuses = sorted(
        r["execution_status"] for r in await logs(api, started["session_id"]) if r["action_type"] == "tool_call"
    )
    assert statuses == ["completed", "completed", "failed"]


async def test_a_policy_denies_asking_an_agent(api: Api, llm_server: LlmServer) -> None:
    c, lead, helper = case(), unique("lead"), unique("auditor")
    await agent(api, helper, [])
    await agent(api, lead, [{"tool": "agent.call", "fixed": {"agent": helper}}])
    await policy(
        api,
        unique("no-auditor"),
        {
            "subjects": {"agents": [lead]},
            "target": {"kind": "tool", "tools": ["agent.call"]},
            "condition": f"args.agent == '{helper}'",
            "effect": "deny",
            "description": "the lead does not consult the auditor",
        },
    )
    llm_server.script(c, lead, [{"tool_calls": [ask(helper, "q", c)]}, {"done": True}])
    started = await start(api, c, agents=[lead])
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    told = tool_messages(llm_server.calls(c, lead)[1])["q"]
    assert "the lead does not consult the auditor" in told["error"]
    assert llm_server.calls(c, helper) == []
    made = [r for r in await logs(api, started["session_id"]) if r["action_type"] == "tool_call"]
    assert [r["execution_status"] for r in made] == ["denied"]


async def test_an_agent_cannot_be_saved_asking_itself(api: Api) -> None:
    name = unique("narcissus")
    base = {"agent_type": "clerk", "capabilities": ["x"], "system_prompt": "x", "output_schema": OUTPUT}
    response = await api.request(
        "POST",
        "/api/v1/orchestrator/agents",
        json={**base, "agent_name": name, "tools": [{"tool": "agent.call", "fixed": {"agent": name}}]},
    )
    assert response.status_code == 422 and "cannot ask itself" in response.text, response.text
