"""Agent sessions changed while they run: forked from a stage with an edited goal (no earlier LLM call
made again, counted at the test LLM server), and paused (the call under way finishes, no new one
starts; its approval refuses decisions) then resumed."""

from __future__ import annotations

import asyncio

from tests.support.agents import case, logs, session, start, until
from tests.support.api import Api, eventually
from tests.support.servers import LlmServer

ALL = ["planner", "estimator", "resource", "risk", "validator", "reporter"]


def counts(llm: LlmServer, c: str) -> dict[str, int]:
    return {agent: len(llm.calls(c, agent)) for agent in ["orchestrator", *ALL]}


async def test_a_fork_from_the_validator_stage_calls_no_earlier_agent_again(api: Api, llm_server: LlmServer) -> None:
    c = case()
    original = await start(api, c, agents=ALL)
    done = await until(api, original["session_id"])
    assert done["session_status"] == "completed", done["status_reason"]
    assert counts(llm_server, c) == {"orchestrator": 0, **{a: 1 for a in ALL}}

    path = f"/api/v1/orchestrator/session/{original['session_id']}/fork"
    goal = f"[case:{c}] Re-check the HVAC plan with a tighter budget"
    forked = await api.request("POST", path, role="operator", json={"from_stage": 2, "goal": goal})
    assert forked.status_code == 201, forked.text
    assert forked.json()["forked_from"] == original["session_id"] and forked.json()["goal"] == goal
    fork_done = await until(api, forked.json()["session_id"])
    assert fork_done["session_status"] == "completed", fork_done["status_reason"]
    # Planner, estimator, resource and risk (stages 0 and 1) were reused; validator and reporter ran again.
    assert counts(llm_server, c) == {
        "orchestrator": 0,
        "planner": 1,
        "estimator": 1,
        "resource": 1,
        "risk": 1,
        "validator": 2,
        "reporter": 2,
    }
    assert "Re-check the HVAC plan" in llm_server.calls(c, "validator")[1]["messages"][-1]["content"]
    outputs = fork_done["final_output"]["outputs"]
    assert outputs["planner"] == done["final_output"]["outputs"]["planner"]
    assert sorted(r["agent_name"] for r in await logs(api, forked.json()["session_id"])) == ["reporter", "validator"]

    too_far = await api.request("POST", path, role="operator", json={"from_stage": 9})
    assert too_far.status_code == 422 and "stages 0 to 3" in too_far.json()["detail"]
    viewer = await api.request("POST", path, role="viewer", json={"from_stage": 0})
    assert viewer.status_code == 403


async def test_a_paused_session_starts_no_new_agent_call_until_resumed(api: Api, llm_server: LlmServer) -> None:
    c = case()
    llm_server.script(c, "planner", [("slow", 1.0, None)])
    started = await start(api, c, agents=ALL, approval_required=True)
    session_id = started["session_id"]
    path = f"/api/v1/orchestrator/session/{session_id}"

    async def planning() -> bool:
        return len(llm_server.calls(c, "planner")) == 1 or any(
            r["agent_name"] == "planner" for r in await logs(api, session_id)
        )

    await eventually(planning)
    paused = await api.request("POST", f"{path}/pause", role="operator", json={"reason": "budget under review"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"]["reason"] == "budget under review"
    await asyncio.sleep(2.0)  # the planner's call finishes; the estimator's does not start
    assert len(llm_server.calls(c, "planner")) == 1 and llm_server.calls(c, "estimator") == []
    assert (await session(api, session_id))["state"]["paused"]["actor"] == "operator-user"

    assert (await api.request("POST", f"{path}/resume", role="operator", json={})).status_code == 200
    awaiting = await until(api, session_id, ("awaiting_approval",))
    assert awaiting["paused"] is None
    assert (await api.request("POST", f"{path}/pause", role="operator", json={"reason": "hold"})).status_code == 200
    refused = await api.request("POST", f"{path}/approval", role="approver", json={"decision": "approve"})
    assert refused.status_code == 409 and refused.json()["error"] == "paused", refused.text
    assert (await api.request("POST", f"{path}/resume", role="operator", json={})).status_code == 200
    approved = await api.request("POST", f"{path}/approval", role="approver", json={"decision": "approve"})
    assert approved.status_code == 200, approved.text
    assert (await until(api, session_id))["session_status"] == "completed"
