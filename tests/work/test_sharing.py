"""Work shared fairly (seed 001, phase 2E; issue 25): work items of a definition shared among a role's
people round-robin, least-loaded with a cap (the waiting item handed out when a load drops), by skill;
out of office (a delegate holds new work on behalf of the absent person); bulk hand-over and reassignment
recorded with who and why; a step workflow's task distributed and reassigned through its run."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api import Api, as_person, eventually
from tests.support.steps import create, execute, finished, unique_name, workflow
from tests.support.work import Q, customer


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def person(api: Api, name: str, pool: str, **extra: Any) -> None:
    response = await api.request("PUT", f"/api/v1/people/{name}", json={"roles": [pool], **extra})
    assert response.status_code == 200, response.text


async def items_for(api: Api, distribution: dict[str, Any], entities: int) -> list[dict[str, Any]]:
    """A definition sharing its items by ``distribution``, ``entities`` entities that call for an item, and
    the items the signal interpreter made for them."""
    entity_type = unique("ws_")
    definition = await api.request(
        "POST",
        "/api/v1/orchestrator/definitions",
        json={
            "name": unique("Shared work "),
            "workflow_type": "custom",
            "trigger_conditions": {"risk_score_min": 0, "entity_type": entity_type, "distribution": distribution},
        },
    )
    assert definition.status_code == 201, definition.text
    ids = [await customer(api, entity_type=entity_type) for _ in range(entities)]
    made = await api.request("POST", f"{Q}/signals/interpret", role="operator")
    assert made.status_code == 200, made.text
    found = []
    for item_id in made.json()["created"]:
        item = (await api.request("GET", f"{Q}/executions/{item_id}", role="admin")).json()
        if item["entity_id"] in ids:
            found.append(item)
    assert len(found) == entities
    return found


async def item(api: Api, item_id: str) -> dict[str, Any]:
    return (await api.request("GET", f"{Q}/executions/{item_id}", role="admin")).json()  # type: ignore[no-any-return]


async def test_round_robin_over_three_people(api: Api) -> None:
    pool = unique("rr")
    people = [unique("p") for _ in range(3)]
    for name in people:
        await person(api, name, pool)
    items = await items_for(api, {"pool": pool, "strategy": "round_robin"}, 6)
    assert Counter(i["assignee"] for i in items) == {name: 2 for name in people}
    changes = (
        await api.request("GET", f"/api/v1/assignments/changes?item=work:{items[0]['id']}", role="viewer")
    ).json()
    assert changes[0]["how"] == "round_robin" and changes[0]["actor"] == "distribution"


async def test_least_loaded_with_a_cap_hands_out_waiting_work_when_a_load_drops(api: Api) -> None:
    pool = unique("ll")
    light, heavy = unique("q"), unique("q")
    await person(api, light, pool, max_open=1)
    await person(api, heavy, pool, max_open=2)
    items = await items_for(api, {"pool": pool, "strategy": "least_loaded"}, 4)
    assert Counter(i["assignee"] for i in items) == {light: 1, heavy: 2, pool: 1}  # one waits: everyone is full
    listed = {p["name"]: p for p in (await api.request("GET", f"/api/v1/people?role={pool}", role="viewer")).json()}
    assert listed[light]["open_items"] == 1 and listed[heavy]["open_items"] == 2
    waiting = next(i for i in items if i["assignee"] == pool)
    done = next(i for i in items if i["assignee"] == light)
    closed = await api.request(
        "PATCH", f"{Q}/executions/{done['id']}/status", role="admin", json={"status": "completed"}
    )
    assert closed.status_code == 200, closed.text
    assert (await item(api, waiting["id"]))["assignee"] == light  # handed out as the load dropped


async def test_a_skill_match(api: Api) -> None:
    pool = unique("sk")
    german, french = unique("r"), unique("r")
    await person(api, german, pool, skills=["german"])
    await person(api, french, pool, skills=["french", "german"])
    items = await items_for(api, {"pool": pool, "strategy": "skill", "skills": ["french"]}, 3)
    assert {i["assignee"] for i in items} == {french}
    refused = await api.request(
        "POST",
        "/api/v1/orchestrator/definitions",
        json={
            "name": unique("x"),
            "workflow_type": "custom",
            "trigger_conditions": {"distribution": {"pool": pool, "strategy": "skill"}},
        },
    )
    assert refused.status_code == 422 and "skills" in refused.text


async def test_out_of_office_delegation_handover_and_reassignment(api: Api) -> None:
    pool = unique("oo")
    away, delegate, other = unique("s"), unique("s"), unique("s")
    await person(api, away, pool)
    now = datetime.now(UTC)
    absence = await api.request(
        "PUT",
        f"/api/v1/people/{away}/absence",
        json={
            "delegate": delegate,
            "starts_ts": (now - timedelta(minutes=1)).isoformat(),
            "ends_ts": (now + timedelta(hours=2)).isoformat(),
            "reason": "holiday",
        },
    )
    assert absence.status_code == 201, absence.text
    items = await items_for(api, {"pool": pool, "strategy": "round_robin"}, 2)
    assert {(i["assignee"], i["on_behalf_of"]) for i in items} == {(delegate, away)}
    listed = {p["name"]: p for p in (await api.request("GET", f"/api/v1/people?role={pool}", role="viewer")).json()}
    assert listed[away]["away"]["delegate"] == delegate

    handed = await api.request(
        "POST", f"/api/v1/people/{delegate}/handover", json={"to": other, "reason": "leaving the team"}
    )
    assert handed.status_code == 200 and handed.json()["moved"] == 2, handed.text
    assert {(await item(api, i["id"]))["assignee"] for i in items} == {other}

    back = await api.request(
        "POST",
        "/api/v1/assignments/reassign",
        role="operator",
        json={"items": [f"work:{items[0]['id']}"], "to": away, "reason": "their customer"},
    )
    assert back.status_code == 200, back.text
    moved = back.json()["items"][0]
    assert (moved["assignee"], moved["on_behalf_of"]) == (delegate, away)  # away still: their delegate holds it
    log = (await api.request("GET", f"/api/v1/assignments/changes?item=work:{items[0]['id']}", role="viewer")).json()
    assert [(c["how"], c["to_assignee"], c["actor"], c["reason"]) for c in log] == [
        ("reassign", delegate, "operator-user", "their customer"),
        ("handover", other, "admin-user", "leaving the team"),
        ("round_robin", delegate, "distribution", None),
    ]
    viewer = await api.request(
        "POST",
        "/api/v1/assignments/reassign",
        role="viewer",
        json={"items": [f"work:{items[0]['id']}"], "to": "x", "reason": "r"},
    )
    assert viewer.status_code == 403


async def test_a_step_task_is_distributed_and_reassigned_through_its_run(api: Api) -> None:
    pool = unique("tk")
    await person(api, "alice", pool)
    await person(api, "bob", pool)
    name = unique_name("shared_task")
    await create(
        api,
        workflow(
            name,
            [
                {
                    "name": "review",
                    "human_task": {
                        "assignee": pool,
                        "title": "Review",
                        "distribute": {"pool": pool, "strategy": "round_robin"},
                    },
                }
            ],
        ),
    )
    runs = [await execute(api, name) for _ in range(2)]

    async def tasks() -> list[dict[str, Any]] | None:
        inbox = (await api.request("GET", "/api/v1/inbox?kind=task", role="admin")).json()
        found = [i for i in inbox if i["title"] == "Review" and any(r["id"] in i["link"] for r in runs)]
        return found if len(found) == 2 else None

    found = await eventually(tasks, attempts=200)
    assert sorted(t["assignee"][0] for t in found) == ["alice", "bob"]
    bobs = next(t for t in found if t["assignee"][0] == "bob")
    moved = await api.request(
        "POST",
        "/api/v1/assignments/reassign",
        role="operator",
        json={"items": [bobs["id"]], "to": "carol", "reason": "bob is busy"},
    )
    assert moved.status_code == 200 and moved.json()["moved"] == 1, moved.text
    path = f"/api/v1/inbox/{bobs['id']}/decision"
    refused = await api.request("POST", path, role=None, headers=as_person("bob"), json={"action": "approve"})
    assert refused.status_code == 403
    decided = await api.request("POST", path, role=None, headers=as_person("carol"), json={"action": "approve"})
    assert decided.status_code == 200, decided.text
    run = next(r for r in runs if r["id"] in bobs["link"])
    done = await finished(api, run["id"])
    assert done["status"] == "completed" and done["output"]["review"]["actor"] == "carol"
