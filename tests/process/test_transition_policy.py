"""The one approval policy on process transitions (issue 25): a quote moved to accepted above 10,000 waits
for two managers, the requester's own approval is refused (separation of duties, through delegation
too), the transition happens once when approved; a late approval escalates, and one past its deadline
expires with the caller told; below the threshold the move is immediate; a deny is a 403 naming the
policy. The decision log matches what happened."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api, as_person, eventually
from tests.support.process import events_of, node, template, unique_code
from tests.support.steps import create, execute, finished, unique_name, workflow


async def quote_template(api: Api) -> str:
    code = unique_code("QUOTE")
    states = [
        node(0, [], [1]),
        node(1, [0], [2, 3], name="sent"),
        node(2, [1], [], name="accepted"),
        node(3, [1], [], name="lost"),
    ]
    response = await api.request("POST", "/api/v1/workflow-template", json=template(code, states))
    assert response.status_code == 201, response.text
    return code


async def managers(api: Api, *names: str) -> None:
    for name in names:
        response = await api.request("PUT", f"/api/v1/people/{name}", json={"roles": ["manager"]})
        assert response.status_code == 200, response.text


async def save(api: Api, name: str, body: dict[str, Any]) -> None:
    response = await api.request("PUT", f"/api/v1/policies/{name}", json=body)
    assert response.status_code == 200, response.text


async def at_sent(api: Api, code: str) -> str:
    instance = (await api.start(code))["instance_id"]
    moved = await api.transition(instance, 1)
    assert moved.status_code == 200, moved.text
    return str(instance)


async def move(api: Api, instance: str, to: int, who: str, **fields: Any) -> Any:
    return await api.request(
        "PUT",
        f"/api/v1/workflow-instance/{instance}/transition",
        role=None,
        headers=as_person(who),
        json={"to_state_id": to, "fields": fields},
    )


async def vote(api: Api, approval: str, who: str, decision: str = "approve") -> Any:
    return await api.request(
        "POST", f"/api/v1/approvals/{approval}/decision", role=None, headers=as_person(who), json={"decision": decision}
    )


async def test_a_big_quote_waits_for_two_managers_and_not_its_requester(api: Api, engine: AsyncEngine) -> None:
    code = await quote_template(api)
    await managers(api, "alice", "bob", "carol")
    name = f"big-quotes-{uuid.uuid4().hex[:6]}"
    await save(
        api,
        name,
        {
            "description": "quotes above 10,000 are accepted by two managers",
            "target": {"kind": "transition", "template_code": code, "to_states": ["accepted"]},
            "condition": "args.amount > 10000",
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["manager"]}, "count": 2, "separation_of_duties": True},
        },
    )
    small = await at_sent(api, code)
    direct = await move(api, small, 2, "alice", amount=5000)
    assert direct.status_code == 200 and direct.json()["current_state"]["name"] == "accepted"

    big = await at_sent(api, code)
    asked = await move(api, big, 2, "alice", amount=25000)
    assert asked.status_code == 202, asked.text
    ticket = asked.json()
    assert ticket["status"] == "approval_required" and ticket["policy"] == name
    approval = ticket["approval_id"]
    waiting = (await api.request("GET", f"/api/v1/workflow-instance/{big}", role="viewer")).json()
    assert waiting["current_state"]["name"] == "sent"  # nothing moved yet

    own = await vote(api, approval, "alice")
    assert own.status_code == 403 and own.json()["error"] == "separation_of_duties", own.text
    outsider = await vote(api, approval, "dave")
    assert outsider.status_code == 403 and outsider.json()["error"] == "not_an_approver"
    # The approval is in the approvers' inbox, with what is asked, by whom, and the policy; not in alice's.
    inbox = (await api.request("GET", "/api/v1/inbox?kind=policy", role=None, headers=as_person("bob"))).json()
    item = next(i for i in inbox if i["id"] == f"policy:{approval}")
    assert name in item["title"] and "alice" in item["title"] and "0/2" in item["title"]
    mine = (await api.request("GET", "/api/v1/inbox?kind=policy", role=None, headers=as_person("alice"))).json()
    assert f"policy:{approval}" not in [i["id"] for i in mine]

    first = await vote(api, approval, "bob")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    twice = await vote(api, approval, "bob")
    assert twice.status_code == 409 and twice.json()["error"] == "already_voted"
    decided = await api.request(
        "POST",
        f"/api/v1/inbox/policy:{approval}/decision",
        role=None,
        headers=as_person("carol"),
        json={"action": "approve"},
    )
    assert decided.status_code == 200, decided.text

    async def moved() -> dict[str, Any] | None:
        view = (await api.request("GET", f"/api/v1/workflow-instance/{big}", role="viewer")).json()
        return view if view["current_state"]["name"] == "accepted" else None

    view = await eventually(moved, attempts=200)
    last = view["state_history"][-1]
    assert last["actor"] == "alice" and last["to"] == 2  # the requester's transition, performed once approved
    transitions = [
        e for e in await events_of(engine, big) if e["event_type"] == "state_transition" and e["to_state_id"] == 2
    ]
    assert len(transitions) == 1
    settled = (await api.request("GET", f"/api/v1/approvals/{approval}", role="viewer")).json()
    assert settled["status"] == "approved" and [v["actor"] for v in settled["votes"]] == ["bob", "carol"]
    log = (await api.request("GET", f"/api/v1/policy-decisions?policy={name}", role="viewer")).json()["items"]
    assert [(d["subject"], d["effect"], d["outcome"], d["decided_by"]) for d in log] == [
        ("alice", "require_approval", "approved", ["bob", "carol"])
    ]


async def test_a_delegate_cannot_approve_for_the_requester(api: Api) -> None:
    """Separation of duties through delegation: carol stands in for alice (out of office), so carol may not
    approve what alice asked for; bob may."""
    code = await quote_template(api)
    await managers(api, "alice", "bob", "carol")
    name = f"any-accept-{uuid.uuid4().hex[:6]}"
    await save(
        api,
        name,
        {
            "target": {"kind": "transition", "template_code": code, "to_states": [2]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["manager"]}},
        },
    )
    instance = await at_sent(api, code)
    approval = (await move(api, instance, 2, "alice")).json()["approval_id"]
    now = datetime.now(UTC)
    away = await api.request(
        "PUT",
        "/api/v1/people/alice/absence",
        role=None,
        headers=as_person("alice"),
        json={"delegate": "carol", "starts_ts": now.isoformat(), "ends_ts": (now + timedelta(hours=1)).isoformat()},
    )
    assert away.status_code == 201, away.text
    try:
        refused = await vote(api, approval, "carol")
        assert refused.status_code == 403 and "stands in for alice" in refused.json()["detail"]
        assert (await vote(api, approval, "bob")).status_code == 200
    finally:
        assert (
            await api.request("DELETE", "/api/v1/people/alice/absence", role=None, headers=as_person("alice"))
        ).status_code == 204


async def test_a_late_approval_escalates_and_then_expires(api: Api) -> None:
    code = await quote_template(api)
    name = f"slow-accept-{uuid.uuid4().hex[:6]}"
    await save(
        api,
        name,
        {
            "target": {"kind": "transition", "template_code": code, "to_states": ["accepted"]},
            "effect": "require_approval",
            "approval": {
                "approvers": {"people": ["bob"]},
                "deadline_seconds": 4,
                "escalation": {"after_seconds": 1, "to": ["carol"]},
            },
        },
    )
    instance = await at_sent(api, code)
    approval = (await move(api, instance, 2, "alice")).json()["approval_id"]
    early = await vote(api, approval, "carol", "reject")
    assert early.status_code == 403  # not hers until it escalates

    async def escalated() -> dict[str, Any] | None:
        found = (await api.request("GET", f"/api/v1/approvals/{approval}", role="viewer")).json()
        return found if found["escalated"] else None

    await eventually(escalated, attempts=100, delay=0.1)
    inbox = (await api.request("GET", "/api/v1/inbox?kind=policy", role=None, headers=as_person("carol"))).json()
    item = next(i for i in inbox if i["id"] == f"policy:{approval}")
    assert item["escalated"] is True

    async def expired() -> dict[str, Any] | None:
        found = (await api.request("GET", f"/api/v1/approvals/{approval}", role="viewer")).json()
        return found if found["status"] == "expired" else None

    ended = await eventually(expired, attempts=100, delay=0.1)
    assert "no decision within 4s" in ended["message"]
    view = (await api.request("GET", f"/api/v1/workflow-instance/{instance}", role="viewer")).json()
    assert view["current_state"]["name"] == "sent"  # the caller is told (the approval says expired); nothing moved
    late = await vote(api, approval, "bob")
    assert late.status_code == 409 and late.json()["error"] == "approval_closed"
    log = (await api.request("GET", f"/api/v1/policy-decisions?policy={name}", role="viewer")).json()["items"]
    assert [d["outcome"] for d in log] == ["expired"]


async def test_a_denied_transition_is_a_403_naming_the_policy(api: Api) -> None:
    code = await quote_template(api)
    name = f"no-lost-{uuid.uuid4().hex[:6]}"
    await save(
        api,
        name,
        {
            "description": "operators do not mark quotes lost",
            "subjects": {"roles": ["operator"]},
            "target": {"kind": "transition", "template_code": code, "to_states": ["lost"]},
            "effect": "deny",
        },
    )
    instance = await at_sent(api, code)
    denied = await move(api, instance, 3, "alice")
    assert denied.status_code == 403 and denied.json()["error"] == "policy_denied"
    assert name in denied.json()["detail"] and "operators do not mark quotes lost" in denied.json()["detail"]
    admin = await api.transition(instance, 3)  # the api fixture's operator key: an operator too
    assert admin.status_code == 403
    by_admin = await api.request("PUT", f"/api/v1/workflow-instance/{instance}/transition", json={"to_state_id": 3})
    assert by_admin.status_code == 200  # an admin is not an operator: the policy does not apply
    evaluated = await api.request(
        "POST",
        "/api/v1/policy-decisions/evaluate",
        role="viewer",
        json={
            "subject_kind": "person",
            "subject": "x",
            "role": "operator",
            "action_kind": "transition",
            "target": code,
            "to_state": "lost",
        },
    )
    assert evaluated.json()["effect"] == "deny" and evaluated.json()["policy"] == name


async def test_policies_are_validated_versioned_and_audited(api: Api) -> None:
    name = f"audited-{uuid.uuid4().hex[:6]}"
    bad = [
        ({"target": {"kind": "tool"}, "effect": "deny"}, "names its tools"),
        ({"target": {"kind": "tool", "tools": ["x"]}, "effect": "require_approval"}, "needs its approval"),
        ({"target": {"kind": "tool", "tools": ["x"]}, "effect": "deny", "condition": "args.a >"}, "condition"),
        (
            {
                "target": {"kind": "tool", "tools": ["x"]},
                "effect": "deny",
                "condition": "[[[[[[[[[[[[[1]]]]]]]]]]]]] == 1",
            },
            "nested deeper",
        ),
        (
            {
                "target": {"kind": "tool", "tools": ["x"]},
                "effect": "require_approval",
                "approval": {
                    "approvers": {"roles": ["a"]},
                    "deadline_seconds": 10,
                    "escalation": {"after_seconds": 20, "to": ["b"]},
                },
            },
            "before the deadline",
        ),
    ]
    for body, problem in bad:
        response = await api.request("PUT", f"/api/v1/policies/{name}", json=body)
        assert response.status_code == 422 and problem in response.text, response.text
    refused = await api.request("PUT", f"/api/v1/policies/{name}", role="operator", json=bad[0][0])
    assert refused.status_code == 403
    body = {"target": {"kind": "tool", "tools": ["email.send"]}, "effect": "deny"}
    assert (await api.request("PUT", f"/api/v1/policies/{name}", json=body)).json()["version"] == 1
    assert (await api.request("PUT", f"/api/v1/policies/{name}", json={**body, "effect": "allow"})).json()[
        "version"
    ] == 2
    assert (await api.request("DELETE", f"/api/v1/policies/{name}")).status_code == 204
    versions = (await api.request("GET", f"/api/v1/policies/{name}/versions", role="viewer")).json()
    assert [(v["version"], v["change"], v["actor"]) for v in versions] == [
        (1, "saved", "admin-user"),
        (2, "saved", "admin-user"),
        (3, "deleted", "admin-user"),
    ]
    assert (await api.request("GET", f"/api/v1/policies/{name}", role="viewer")).status_code == 404
    # Saved again after its deletion, the policy continues its history: no version number is reused.
    again = await api.request("PUT", f"/api/v1/policies/{name}", json=body)
    assert again.status_code == 200 and again.json()["version"] == 4, again.text
    versions = (await api.request("GET", f"/api/v1/policies/{name}/versions", role="viewer")).json()
    assert [(v["version"], v["change"]) for v in versions][-1] == (4, "saved")
    # It denies email.send to everyone: gone again, so that no later test meets it.
    assert (await api.request("DELETE", f"/api/v1/policies/{name}")).status_code == 204


async def test_a_steps_transition_meets_the_templates_transition_policies(api: Api) -> None:
    """A step workflow's instance.transition is a transition too: the template's policy that a big quote is
    accepted by two managers holds for it as for a person, and a denial fails the step naming the policy.
    Nothing moves before the approvals; once given, the instance moves once."""
    code = await quote_template(api)
    await managers(api, "alice", "bob")
    name = f"step-quotes-{uuid.uuid4().hex[:6]}"
    await save(
        api,
        name,
        {
            "description": "quotes above 10,000 are accepted by two managers",
            "target": {"kind": "transition", "template_code": code, "to_states": ["accepted"]},
            "condition": "args.amount > 10000",
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["manager"]}, "count": 2},
        },
    )
    await save(
        api,
        f"{name}-lost",
        {
            "description": "only people mark a quote lost",
            "subjects": {"workflows": ["closer_*"]},
            "target": {"kind": "transition", "template_code": code, "to_states": ["lost"]},
            "effect": "deny",
        },
    )
    big, small = await at_sent(api, code), await at_sent(api, code)
    closer = unique_name("closer")
    step = {
        "name": "accept",
        "tool": "instance.transition",
        "params": {"instance_id": "${input.instance}", "to_state_id": "${input.to}", "fields": "${input.fields}"},
    }
    await create(api, workflow(closer, [step]))
    lost = await finished(api, (await execute(api, closer, {"instance": small, "to": 3, "fields": {}}))["id"])
    assert lost["status"] == "failed" and "only people mark a quote lost" in lost["error"], lost
    started = await execute(api, closer, {"instance": big, "to": 2, "fields": {"amount": 25000}})

    async def pending() -> dict[str, Any] | None:
        items = (await api.request("GET", "/api/v1/approvals?status=pending&limit=200", role="viewer")).json()["items"]
        return next((a for a in items if a["policy_name"] == name), None)

    approval = await eventually(pending, attempts=300)
    assert approval["subject"] == closer and approval["action_kind"] == "transition" and approval["required"] == 2
    assert (await api.get(big))["current_state"]["id"] == 1  # nothing moved yet
    assert (await vote(api, approval["id"], "alice")).status_code == 200
    assert (await vote(api, approval["id"], "bob")).status_code == 200
    done = await finished(api, started["id"])
    assert done["status"] == "completed", done
    view = await api.get(big)
    assert view["current_state"]["id"] == 2 and [h["to"] for h in view["state_history"]].count(2) == 1
    decisions = (await api.request("GET", f"/api/v1/policy-decisions?subject={closer}", role="viewer")).json()["items"]
    assert sorted((d["policy_name"], d["outcome"]) for d in decisions) == [
        (name, "approved"),
        (f"{name}-lost", "denied"),
    ]


async def test_an_approval_is_shared_among_a_pool_not_offered_to_all(api: Api) -> None:
    """With a distribution, an approval goes to people of the pool chosen round robin, never the requester
    (alice, a member herself); only the chosen one may vote, and each choice is in the assignment log."""
    code = await quote_template(api)
    pool = f"quote_desk_{uuid.uuid4().hex[:6]}"
    for person in ("alice", "bob", "carol"):
        response = await api.request("PUT", f"/api/v1/people/{person}", json={"roles": ["manager", pool]})
        assert response.status_code == 200, response.text
    await save(
        api,
        f"shared-{uuid.uuid4().hex[:6]}",
        {
            "target": {"kind": "transition", "template_code": code, "to_states": ["accepted"]},
            "effect": "require_approval",
            "approval": {
                "approvers": {"roles": [pool]},
                "distribution": {"pool": pool, "strategy": "round_robin"},
            },
        },
    )
    first, second = await at_sent(api, code), await at_sent(api, code)
    one = (await move(api, first, 2, "alice")).json()
    two = (await move(api, second, 2, "alice")).json()
    approvals = [
        (await api.request("GET", f"/api/v1/approvals/{t['approval_id']}", role="viewer")).json() for t in (one, two)
    ]
    assert [a["approvers"] for a in approvals] == [{"people": ["bob"], "roles": []}, {"people": ["carol"], "roles": []}]
    refused = await vote(api, one["approval_id"], "carol")
    assert refused.status_code == 403, refused.text
    assert (await vote(api, one["approval_id"], "bob")).status_code == 200
    assert (await vote(api, two["approval_id"], "carol")).status_code == 200
    await eventually(lambda: _state_is(api, first, 2), attempts=200)
    await eventually(lambda: _state_is(api, second, 2), attempts=200)
    log = (
        await api.request("GET", f"/api/v1/assignments/changes?item=approval:{one['approval_id']}", role="viewer")
    ).json()
    assert [(c["to_assignee"], c["how"]) for c in log] == [("bob", "round_robin")]


async def _state_is(api: Api, instance: str, state: int) -> bool | None:
    return (await api.get(instance))["current_state"]["id"] == state or None


async def test_a_distribution_names_one_of_the_approver_roles(api: Api) -> None:
    response = await api.request(
        "PUT",
        f"/api/v1/policies/bad-{uuid.uuid4().hex[:6]}",
        json={
            "target": {"kind": "tool", "tools": ["http.request"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["manager"]}, "distribution": {"pool": "somebody_else"}},
        },
    )
    assert response.status_code == 422 and "distribution.pool must be one of approvers.roles" in response.text
