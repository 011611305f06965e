"""Approval gates: approved, rejected (with and without a reject path), refused deciders, and timeouts
on the time-skipping test server (escalation and default path)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.notifications.tables import Notification
from tests.support.api import Api
from tests.support.process import events_of, graph_row, node, template, unique_code


def gated_template(code: str, **gate: Any) -> dict[str, Any]:
    """0 → 1 (gated) → 2 success | 3 failure."""
    approval = {"roles": ["approver"], **gate}
    return template(
        code,
        [
            node(0, [], [1]),
            node(1, [0], [2, 3], approval=approval),
            node(2, [1], []),
            node(3, [1], [], success=False),
        ],
    )


async def create(api: Api, **gate: Any) -> str:
    code = unique_code("GATE")
    response = await api.request("POST", "/api/v1/workflow-template", json=gated_template(code, **gate))
    assert response.status_code == 201, response.text
    return code


async def test_approval_approved(api: Api, engine: AsyncEngine, temporal_client: Client) -> None:
    code = await create(api)
    instance = await api.start(code)
    iid = instance["instance_id"]
    entered = await api.transition(iid, 1)
    assert entered.json()["pending_approval"]["status"] == "pending"
    assert entered.json()["pending_approval"]["roles"] == ["approver"]

    blocked = await api.transition(iid, 2)
    assert blocked.status_code == 409 and blocked.json()["error"] == "approval_pending"
    assert "needs an approval" in blocked.json()["detail"]
    assert (await api.decide(iid, "approve", role="operator")).status_code == 403

    approved = await api.decide(iid, "approve", comment="looks right")
    assert approved.status_code == 200, approved.text
    decision = approved.json()["pending_approval"]["decisions"][0]
    assert decision["actor"] == "approver-user" and decision["comment"] == "looks right"
    again = await api.decide(iid, "approve")
    assert again.status_code == 409 and again.json()["error"] == "no_approval_pending"

    assert (await api.transition(iid, 2)).status_code == 200
    view = await api.get(iid)
    assert view["success"] is True and view["pending_approval"] is None

    events = await events_of(engine, iid)
    granted = next(e for e in events if e["event_type"] == "approval_granted")
    assert granted["actor"] == "approver-user" and granted["comment"] == "looks right"
    assert [e["event_type"] for e in events if e["event_type"].startswith("approval")] == [
        "approval_requested",
        "approval_granted",
    ]
    # The decision and who made it are in the workflow's history too.
    history = await temporal_client.get_workflow_handle(instance["workflow_id"]).fetch_history()
    accepted = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    payloads = [
        json.loads(p.data)
        for e in accepted
        for p in e.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads
    ]
    assert {"decision": "approve", "comment": "looks right", "actor": "approver-user", "actor_role": "approver"} in [
        {k: p.get(k) for k in ("decision", "comment", "actor", "actor_role")} for p in payloads
    ]


async def test_approval_rejected_takes_the_reject_path(api: Api, engine: AsyncEngine) -> None:
    code = await create(api, reject_to_state_id=3)
    iid = (await api.start(code))["instance_id"]
    await api.transition(iid, 1)
    rejected = await api.decide(iid, "reject", comment="too expensive")
    assert rejected.status_code == 200
    assert rejected.json()["current_state"]["id"] == 3
    view = await api.get(iid)
    assert view["workflow_status"] == "completed" and view["success"] is False
    events = await events_of(engine, iid)
    rejection = next(e for e in events if e["event_type"] == "approval_rejected")
    assert rejection["actor"] == "approver-user" and rejection["comment"] == "too expensive"
    last_move = [e for e in events if e["event_type"] == "state_transition"][-1]
    assert (last_move["from_state_id"], last_move["to_state_id"], last_move["actor"]) == (1, 3, "approver-user")


async def test_rejection_without_reject_path_keeps_the_gate_closed(api: Api) -> None:
    code = await create(api)
    iid = (await api.start(code))["instance_id"]
    await api.transition(iid, 1)
    assert (await api.decide(iid, "reject", comment="not yet")).status_code == 200
    blocked = await api.transition(iid, 2)
    assert blocked.status_code == 409 and "approval is rejected" in blocked.json()["detail"]
    assert (await api.decide(iid, "approve", comment="fixed now")).status_code == 200
    assert (await api.transition(iid, 2)).status_code == 200


async def test_gate_roles_are_enforced(api: Api) -> None:
    code = await create(api, roles=["admin"])
    iid = (await api.start(code))["instance_id"]
    await api.transition(iid, 1)
    refused = await api.decide(iid, "approve", role="approver")
    assert refused.status_code == 403 and "allowed roles: admin" in refused.json()["detail"]
    assert (await api.decide(iid, "approve", role="admin")).status_code == 200


# --------------------------------------------------------------------------- timeouts (time skipping)


async def test_approval_timeout_escalates(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    recipient = f"ops-manager-{uuid.uuid4().hex[:6]}"
    code = await create(skipping_api, timeout_seconds=48 * 3600, escalate_to=[recipient])
    iid = (await skipping_api.start(code))["instance_id"]
    await skipping_api.transition(iid, 1)
    await time_skipping_env.sleep(47 * 3600)
    assert (await skipping_api.get(iid))["pending_approval"]["escalated"] is False
    await time_skipping_env.sleep(2 * 3600)

    view = await skipping_api.get(iid)
    assert view["pending_approval"]["escalated"] is True
    assert view["pending_approval"]["status"] == "pending"  # approvers can still decide
    events = await events_of(engine, iid)
    escalation = next(e for e in events if e["event_type"] == "approval_escalated")
    assert escalation["actor"] == "system:approval-timeout"
    async with engine.connect() as conn:
        notes = await conn.execute(select(Notification.__table__).where(Notification.recipient == recipient))
        rows = list(notes.mappings())
    assert len(rows) == 1 and rows[0]["template"] == "approval_escalated"
    assert (await graph_row(engine, iid))["pending_approval"]["escalated"] is True

    assert (await skipping_api.decide(iid, "approve")).status_code == 200
    assert (await skipping_api.transition(iid, 2)).status_code == 200


async def test_approval_timeout_takes_the_default_path(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    code = await create(skipping_api, timeout_seconds=3600, on_timeout="default_path", default_to_state_id=3)
    iid = (await skipping_api.start(code))["instance_id"]
    await skipping_api.transition(iid, 1)
    await time_skipping_env.sleep(3700)
    view = await skipping_api.get(iid)
    assert view["current_state"]["id"] == 3 and view["workflow_status"] == "completed"
    assert view["state_history"][-1]["actor"] == "system:approval-timeout"
    kinds = [e["event_type"] for e in await events_of(engine, iid)]
    assert "approval_timed_out" in kinds and kinds.count("state_transition") == 3


async def test_once_escalated_the_escalation_target_may_decide(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment
) -> None:
    """The SLA of an approval gate: past its time-out it escalates, and the target (here a person who
    is an operator) may decide it, in the inbox or directly; before that only the gate's roles may."""
    code = await create(skipping_api, timeout_seconds=3600, escalate_to=["operator-user"])
    iid = (await skipping_api.start(code))["instance_id"]
    await skipping_api.transition(iid, 1)
    early = await skipping_api.decide(iid, "approve", role="operator")
    assert early.status_code == 403 and "allowed roles: approver" in early.json()["detail"]
    inbox = await skipping_api.request("GET", "/api/v1/inbox?kind=approval", role="operator")
    assert not [i for i in inbox.json() if iid in i["id"]]

    await time_skipping_env.sleep(2 * 3600)
    inbox = await skipping_api.request("GET", "/api/v1/inbox?kind=approval", role="operator")
    item = next(i for i in inbox.json() if iid in i["id"])
    assert item["escalated"] is True and "operator-user" in item["assignee"]
    assert (await skipping_api.decide(iid, "approve", role="viewer")).status_code == 403
    decided = await skipping_api.request(
        "POST", f"/api/v1/inbox/{item['id']}/decision", role="operator", json={"action": "approve"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["result"]["pending_approval"]["status"] == "approved"
