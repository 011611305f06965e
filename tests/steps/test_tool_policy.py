"""The one approval policy before a step tool call and before a rule's action (issue 25): the same policy
format that governs agents' tool calls and transitions. A step's call waits for its approval and then
acts once; a rule's outside action waits likewise; a denied action does not happen and says why."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.api import Api, eventually
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow


async def save(api: Api, body: dict[str, Any]) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    response = await api.request("PUT", f"/api/v1/policies/{name}", json=body)
    assert response.status_code == 200, response.text
    return name


async def pending_for(api: Api, subject: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = (await api.request("GET", "/api/v1/approvals?status=pending&limit=200", role="viewer")).json()["items"]
        return next((a for a in items if a["subject"] == subject), None)

    return await eventually(found, attempts=300)  # type: ignore[no-any-return]


async def test_a_step_tool_call_waits_for_its_approval_then_acts_once(api: Api, webhook_server: WebhookServer) -> None:
    name, tag = unique_name("pays"), uuid.uuid4().hex[:8]
    await create(
        api,
        workflow(
            name,
            [
                {
                    "name": "pay",
                    "tool": "http.request",
                    "params": {"url": webhook_server.url(f"/ok/{tag}"), "method": "POST", "body": {"amount": 12000}},
                }
            ],
        ),
    )
    policy = await save(
        api,
        {
            "subjects": {"workflows": [name]},
            "target": {"kind": "tool", "tools": ["http.request"]},
            "condition": "args.body.amount > 10000",
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    started = await execute(api, name)
    approval = await pending_for(api, name)
    assert approval["policy_name"] == policy and approval["arguments"]["body"] == {"amount": 12000}
    assert webhook_server.at(f"/ok/{tag}") == []  # nothing happens before the approval
    assert (
        await api.request(
            "POST", f"/api/v1/approvals/{approval['id']}/decision", role="approver", json={"decision": "approve"}
        )
    ).status_code == 200
    done = await finished(api, started["id"])
    assert done["status"] == "completed", done
    assert len(webhook_server.at(f"/ok/{tag}")) == 1


async def test_a_rejected_step_call_fails_the_step_saying_so(api: Api, webhook_server: WebhookServer) -> None:
    name, tag = unique_name("pays"), uuid.uuid4().hex[:8]
    await create(
        api,
        workflow(name, [{"name": "pay", "tool": "http.request", "params": {"url": webhook_server.url(f"/ok/{tag}")}}]),
    )
    await save(
        api,
        {
            "subjects": {"workflows": [name]},
            "target": {"kind": "tool", "tools": ["http.*"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    started = await execute(api, name)
    approval = await pending_for(api, name)
    no = await api.request(
        "POST",
        f"/api/v1/approvals/{approval['id']}/decision",
        role="approver",
        json={"decision": "reject", "comment": "no"},
    )
    assert no.status_code == 200
    done = await finished(api, started["id"])
    assert (
        done["status"] == "failed" and "not approved" in done["error"] and "rejected by approver-user" in done["error"]
    )
    assert webhook_server.at(f"/ok/{tag}") == []


async def test_a_denied_rule_action_does_not_happen(api: Api, webhook_server: WebhookServer) -> None:
    kind, tag = unique_type("lead"), uuid.uuid4().hex[:8]
    rule = await create_rule(api, kind, [{"type": "call_webhook", "url": webhook_server.url(f"/ok/{tag}")}])
    policy = await save(
        api,
        {
            "description": "no outside calls for test leads",
            "subjects": {"workflows": [f"rule:{rule['workflow_name']}"]},
            "target": {"kind": "rule_action", "actions": ["call_webhook"]},
            "condition": 'entity.name.startsWith("Test")',
            "effect": "deny",
        },
    )
    await create_entity(api, kind, "Test lead")
    await create_entity(api, kind, "Real lead")
    runs = await finished_executions(api, rule["id"], 2)
    assert sorted(r["status"] for r in runs) == ["completed", "failed"]
    failed = next(r for r in runs if r["status"] == "failed")
    assert "denied by policy" in failed["reason"] and "no outside calls for test leads" in failed["reason"]
    assert len(webhook_server.at(f"/ok/{tag}")) == 1
    log = (await api.request("GET", f"/api/v1/policy-decisions?policy={policy}", role="viewer")).json()["items"]
    assert [(d["action_kind"], d["target"], d["outcome"]) for d in log] == [("rule_action", "call_webhook", "denied")]


async def test_a_rule_action_waits_for_its_approval(api: Api, webhook_server: WebhookServer) -> None:
    kind, tag = unique_type("order"), uuid.uuid4().hex[:8]
    rule = await create_rule(api, kind, [{"type": "call_webhook", "url": webhook_server.url(f"/ok/{tag}")}])
    subject = f"rule:{rule['workflow_name']}"
    await save(
        api,
        {
            "subjects": {"workflows": [subject]},
            "target": {"kind": "rule_action", "actions": ["call_webhook"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    await create_entity(api, kind, "Big order")
    approval = await pending_for(api, subject)
    assert webhook_server.at(f"/ok/{tag}") == []
    assert (
        await api.request(
            "POST", f"/api/v1/approvals/{approval['id']}/decision", role="approver", json={"decision": "approve"}
        )
    ).status_code == 200
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    assert len(webhook_server.at(f"/ok/{tag}")) == 1


async def test_a_steps_agent_call_is_under_the_policy_too(api: Api) -> None:
    """agent.call is a step tool like any other: denied for one workflow (the model is never asked), and
    for another asked of an approver first, then called."""
    denied, approved = unique_name("asks"), unique_name("asks")
    for name in (denied, approved):
        step = {"name": "ask", "tool": "agent.call", "params": {"agent": "analyzer", "input": {"total": 5}}}
        await create(api, workflow(name, [step]))
    await save(
        api,
        {
            "description": "this workflow does not consult the analyzer",
            "subjects": {"workflows": [denied]},
            "target": {"kind": "tool", "tools": ["agent.call"]},
            "condition": "args.agent == 'analyzer'",
            "effect": "deny",
        },
    )
    await save(
        api,
        {
            "subjects": {"workflows": [approved]},
            "target": {"kind": "tool", "tools": ["agent.*"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    no = await finished(api, (await execute(api, denied))["id"])
    assert no["status"] == "failed" and "does not consult the analyzer" in no["error"], no
    started = await execute(api, approved)
    approval = await pending_for(api, approved)
    assert approval["target"] == "agent.call" and approval["arguments"]["agent"] == "analyzer"
    ok = await api.request(
        "POST", f"/api/v1/approvals/{approval['id']}/decision", role="approver", json={"decision": "approve"}
    )
    assert ok.status_code == 200, ok.text
    done = await finished(api, started["id"])
    assert done["status"] == "completed", done
