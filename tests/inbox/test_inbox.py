"""One inbox: an approval gate, an agent session's approval and a work item gathered for the people who
owe them, and each decided through POST /api/v1/inbox/{id}/decision (403 for who may not, 409 once it
is no longer possible)."""

from __future__ import annotations

from typing import Any

from tests.support.agents import case, until
from tests.support.agents import start as start_session
from tests.support.api import Api
from tests.support.work import customer, demo


async def inbox(api: Api, role: str, query: str = "") -> list[dict[str, Any]]:
    response = await api.request("GET", f"/api/v1/inbox{query}", role=role)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def decide(api: Api, role: str, item_id: str, **body: Any) -> Any:
    return await api.request("POST", f"/api/v1/inbox/{item_id}/decision", role=role, json=body)


async def test_the_inbox_gathers_and_decides_every_kind(api: Api) -> None:
    # An approval gate: CONST_RES waits for an approver before leaving state 4.
    instance = await api.start("CONST_RES", name="Inbox Build")
    for state in (1, 2, 3, 4):
        assert (await api.transition(instance["instance_id"], state)).status_code == 200
    # An agent session waiting for approval of its result.
    session = await start_session(api, case(), agents=["planner", "reporter"], approval_required=True)
    await until(api, session["session_id"], ("awaiting_approval",))
    # A work item for the operator.
    entity = await customer(api, revenue_impact_tier=2)
    work = (await demo(api, entity, "operator-user"))[0]

    approver = {i["id"]: i for i in await inbox(api, "approver")}
    gate = next(i for i in approver.values() if i["link"].endswith(instance["instance_id"]))
    assert gate["kind"] == "approval" and gate["actions"] == ["approve", "reject"]
    assert gate["entity_name"] == "Inbox Build" and gate["priority_label"] == "Critical"
    held = approver[f"session:{session['session_id']}"]
    assert held["kind"] == "session"
    assert f"work:{work['id']}" not in approver  # not the approver's work

    operator = {i["id"]: i for i in await inbox(api, "operator")}
    item = operator[f"work:{work['id']}"]
    assert item["title"] == "Complete Strategic Account Plan" and item["priority_score"] == 710
    assert item["actions"] == ["start", "complete", "snooze", "skip", "escalate"]
    assert gate["id"] not in operator and held["id"] not in operator  # approvals are for approvers
    scores = [i["priority_score"] for i in await inbox(api, "admin")]
    assert scores == sorted(scores, reverse=True)
    assert {i["kind"] for i in await inbox(api, "admin", "?kind=work")} == {"work"}

    # Who may not decide: 403; a kind's wrong action: 422.
    assert (await decide(api, "operator", gate["id"], action="approve")).status_code == 403
    assert (await decide(api, "viewer", item["id"], action="start")).status_code == 403
    assert (await decide(api, "approver", gate["id"], action="snooze", days=2)).status_code == 422

    approved = await decide(api, "approver", gate["id"], action="approve", comment="countersigned")
    assert approved.status_code == 200, approved.text
    assert approved.json()["result"]["pending_approval"]["status"] == "approved"
    assert (await decide(api, "approver", gate["id"], action="approve")).status_code == 409
    assert (await api.transition(instance["instance_id"], 5)).status_code == 200

    accepted = await decide(api, "approver", held["id"], action="approve")
    assert accepted.status_code == 200, accepted.text
    assert (await until(api, session["session_id"]))["session_status"] == "completed"
    assert (await decide(api, "approver", held["id"], action="approve")).status_code == 409

    started = await decide(api, "operator", item["id"], action="start")
    assert started.json()["result"]["status"] == "underway"
    assert next(i for i in await inbox(api, "operator") if i["id"] == item["id"])["actions"][0] == "complete"
    done = await decide(api, "operator", item["id"], action="complete", execution_data={"plan": "filed"})
    assert done.json()["result"]["status"] == "completed"
    assert (await decide(api, "operator", item["id"], action="skip", reason="late")).status_code == 409
    remaining = {i["id"] for i in await inbox(api, "admin")}
    assert not {gate["id"], held["id"], item["id"]} & remaining


async def test_only_admins_read_someone_elses_inbox(api: Api) -> None:
    assert (await api.request("GET", "/api/v1/inbox?assignee=approver-user", role="operator")).status_code == 403
    assert (await api.request("GET", "/api/v1/inbox?role=approver", role="operator")).status_code == 403
    as_approver = await api.request("GET", "/api/v1/inbox?role=approver", role="admin")
    assert as_approver.status_code == 200
    assert all("approver" in i["assignee"] or "approver-user" in i["assignee"] for i in as_approver.json())
    assert (
        await api.request("POST", "/api/v1/inbox/work:not-a-uuid/decision", json={"action": "start"})
    ).status_code == 404
