"""The work queue over the API (seed 001): the demo sequence and its status, the lifecycle of an item
(each change an update of its workflow), permanence of skip and complete, escalation, who may act, and
the signal interpreter's idempotence."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.notifications.tables import Notification
from core.work.tables import WorkItem
from tests.support.api import Api, eventually
from tests.support.work import Q, act, customer, demo


async def test_the_demo_sequence_and_its_status(api: Api) -> None:
    entity = await customer(api, revenue_impact_tier=5, churn_risk_score=8, usage_score=95)
    items = await demo(api, entity, "operator-user")
    assert [i["definition_name"] for i in items] == [
        "Complete Strategic Account Plan",
        "Expansion Opportunity",
        "Executive Engagement",
    ]
    assert [(i["priority_score"], i["priority_label"]) for i in items] == [
        (725, "High"),
        (834, "High"),  # 800 + tier 5 x 5 + floor(95 / 10)
        (965, "Critical"),
    ]
    assert [i["id"] for i in await demo(api, entity, "operator-user")] == [i["id"] for i in items]  # idempotent

    queue = await api.request("GET", f"{Q}/queue?demo=true&limit=50", role="operator")
    mine = [i["id"] for i in queue.json() if i["entity_id"] == entity]
    assert mine == [i["id"] for i in items]  # demo mode: the sequence's order
    ranked = await api.request("GET", f"{Q}/queue?limit=200", role="operator")
    scores = [i["priority_score"] for i in ranked.json()]
    assert scores == sorted(scores, reverse=True)  # otherwise: by priority

    status = (await api.request("GET", f"{Q}/demo/status", role="operator")).json()
    assert status["current"]["definition_name"] == "Complete Strategic Account Plan"
    assert status["next"]["definition_name"] == "Expansion Opportunity"

    started = await act(
        api, "operator", items[0]["id"], "status", "PATCH", status="underway", execution_data={"step": 1}
    )
    assert started.status_code == 200, started.text
    assert started.json()["started_at"] and started.json()["status"] == "underway"
    done = await act(
        api, "operator", items[0]["id"], "status", "PATCH", status="completed", execution_data={"plan": "ok"}
    )
    assert done.json()["completed_at"] and done.json()["execution_data"] == {"step": 1, "plan": "ok"}  # merged

    status = (await api.request("GET", f"{Q}/demo/status", role="operator")).json()
    assert (status["total"], status["completed"]) == (3, 1)
    assert status["current"]["definition_name"] == "Expansion Opportunity"
    assert status["next"]["definition_name"] == "Executive Engagement"


async def test_skip_and_complete_are_permanent(api: Api, engine: AsyncEngine) -> None:
    entity = await customer(api)
    strategic, opportunity, _ = await demo(api, entity, "operator-user")
    assert (await act(api, "operator", strategic["id"], "skip")).status_code == 422  # a reason is required
    skipped = await act(api, "operator", strategic["id"], "skip", reason="account churned")
    assert skipped.status_code == 200
    assert skipped.json()["status"] == "skipped" and skipped.json()["skip_reason"] == "account churned"
    await act(api, "operator", opportunity["id"], "status", "PATCH", status="completed")
    for item in (strategic, opportunity):
        for path, method, body in (
            ("status", "PATCH", {"status": "underway"}),
            ("snooze", "POST", {"days": 3}),
            ("skip", "POST", {"reason": "again"}),
            ("escalate", "POST", {"escalation_user_id": "approver-user"}),
        ):
            refused = await act(api, "operator", item["id"], path, method, **body)
            assert refused.status_code == 409, (path, refused.text)
            assert "nothing changes" in refused.json()["detail"]
    async with engine.connect() as conn:
        version = (
            await conn.execute(select(WorkItem.version).where(WorkItem.id == uuid.UUID(strategic["id"])))
        ).scalar()
    assert version == 1  # refused updates recorded nothing


async def test_snooze_answers_the_new_score(api: Api) -> None:
    entity = await customer(api, revenue_impact_tier=5, churn_risk_score=8)
    risk = (await demo(api, entity, "operator-user"))[2]
    snoozed = await act(api, "operator", risk["id"], "snooze", days=10)
    assert snoozed.status_code == 200
    assert (snoozed.json()["status"], snoozed.json()["priority_score"], snoozed.json()["priority_label"]) == (
        "snoozed",
        390,
        "Low",
    )
    assert snoozed.json()["snooze_days"] == 10
    assert (await act(api, "operator", risk["id"], "snooze", days=91)).status_code == 422
    back = await act(api, "operator", risk["id"], "status", "PATCH", status="underway")
    assert (back.json()["status"], back.json()["priority_score"]) == ("underway", 965)
    assert (await act(api, "operator", risk["id"], "status", "PATCH", status="snoozed")).status_code == 409


async def test_escalation_keeps_the_assignee_and_notifies(api: Api, engine: AsyncEngine) -> None:
    entity = await customer(api)
    item = (await demo(api, entity, "operator-user"))[0]
    assert (await act(api, "approver", item["id"], "status", "PATCH", status="underway")).status_code == 403
    escalated = await act(api, "operator", item["id"], "escalate", escalation_user_id="approver-user")
    assert escalated.status_code == 200
    assert escalated.json()["assignee"] == "operator-user"
    assert escalated.json()["escalation_user_id"] == "approver-user" and escalated.json()["escalated_at"]
    async with engine.connect() as conn:
        notes = (
            await conn.execute(
                select(Notification.template).where(
                    Notification.recipient == "approver-user", Notification.source == escalated.json()["workflow_id"]
                )
            )
        ).all()
    assert [n.template for n in notes] == ["work_item_escalated"]
    # The escalation user may now act on it; someone else still may not.
    assert (await act(api, "approver", item["id"], "status", "PATCH", status="underway")).status_code == 200
    assert (await act(api, "viewer", item["id"], "skip", reason="not mine")).status_code == 403


async def test_the_interpreter_creates_what_signals_call_for_once(api: Api, engine: AsyncEngine) -> None:
    kind = f"acct_{uuid.uuid4().hex[:8]}"
    definition = await api.request(
        "POST",
        f"{Q}/definitions",
        json={
            "name": f"Churn rescue {kind}",
            "workflow_type": "risk",
            "trigger_conditions": {"risk_score_min": 6, "entity_type": kind},
        },
    )
    assert definition.status_code == 201, definition.text
    at_risk = await customer(
        api, entity_type=kind, churn_risk_score=5, relationship_strength="weak", assignee="operator-user"
    )
    healthy = await customer(api, entity_type=kind, churn_risk_score=1)

    first = await api.request("POST", f"{Q}/signals/interpret", role="operator")
    assert first.status_code == 200, first.text
    second = await api.request("POST", f"{Q}/signals/interpret", role="operator")
    assert second.status_code == 200, second.text
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(WorkItem.entity_id, WorkItem.assignee, func.count())
                .where(WorkItem.definition_id == uuid.UUID(definition.json()["id"]))
                .group_by(WorkItem.entity_id, WorkItem.assignee)
            )
        ).all()
    assert [(str(r[0]), r[1], r[2]) for r in rows] == [(at_risk, "operator-user", 1)]
    assert healthy not in {str(r[0]) for r in rows}
    queue = (await api.request("GET", f"{Q}/queue?limit=200", role="operator")).json()
    item = next(i for i in queue if i["entity_id"] == at_risk)
    assert item["priority_score"] == 925  # risk 900 + churn 5 x 5
    assert item["workflow_id"] == f"work-item-{item['id']}"


async def test_a_signal_change_rescores_through_the_outbox(api: Api) -> None:
    entity = await customer(api, revenue_impact_tier=5, churn_risk_score=8)
    risk = (await demo(api, entity, "operator-user"))[2]
    assert risk["priority_score"] == 965
    changed = await api.request(
        "PATCH", f"/api/v1/entities/customer/{entity}", role="operator", json={"fields": {"churn_risk_score": 2}}
    )
    assert changed.status_code == 200, changed.text

    async def rescored() -> bool:
        item = await api.request("GET", f"{Q}/executions/{risk['id']}", role="viewer")
        return bool(item.json()["priority_score"] == 935)  # 900 + 5 x 5 + 2 x 5, with no call to the queue

    await eventually(rescored)
    other = await api.request(
        "PATCH", f"/api/v1/entities/customer/{entity}", role="operator", json={"fields": {"note": "called"}}
    )
    assert other.status_code == 200
