"""The SLA (time-skipping server): an item not done by its definition's ``sla.days`` escalates by itself,
from a timer in its workflow, to the definition's ``escalate_to``, who is notified, sees it in their
inbox and may decide it; the assignee keeps it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from core.notifications.tables import Notification
from tests.support.api import Api
from tests.support.automation import unique_type
from tests.support.work import Q, customer


async def test_an_item_past_its_due_time_escalates(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    kind = unique_type("sla")
    created = await skipping_api.request(
        "POST",
        f"{Q}/definitions",
        json={
            "name": f"Renewal call {kind}",
            "workflow_type": "renewal",
            "trigger_conditions": {
                "risk_score_min": 1,
                "entity_type": kind,
                "sla": {"days": 2, "escalate_to": "approver"},
            },
        },
    )
    assert created.status_code == 201, created.text
    half = await skipping_api.request(
        "POST",
        f"{Q}/definitions",
        json={"name": f"x {kind}", "workflow_type": "custom", "trigger_conditions": {"sla": {"days": 2}}},
    )
    assert half.status_code == 422  # an SLA escalates to someone
    entity = await customer(skipping_api, entity_type=kind, churn_risk_score=3, assignee="operator-user")
    run = await skipping_api.request("POST", f"{Q}/signals/interpret", role="operator")
    assert run.status_code == 200, run.text
    queue = (await skipping_api.request("GET", f"{Q}/queue?limit=200", role="operator")).json()
    item = next(i for i in queue if i["entity_id"] == entity)
    assert item["due_at"] and item["escalated_at"] is None

    await time_skipping_env.sleep(timedelta(days=1).total_seconds())
    assert (await skipping_api.request("GET", f"{Q}/executions/{item['id']}", role="viewer")).json()[
        "escalated_at"
    ] is None
    await time_skipping_env.sleep(timedelta(days=1, hours=1).total_seconds())

    escalated = (await skipping_api.request("GET", f"{Q}/executions/{item['id']}", role="viewer")).json()
    assert escalated["escalated_at"] and escalated["escalation_user_id"] == "approver"
    assert escalated["assignee"] == "operator-user"
    async with engine.connect() as conn:
        notes = (
            (
                await conn.execute(
                    select(Notification.recipient).where(
                        Notification.template == "work_item_escalated", Notification.source == f"work-item-{item['id']}"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert notes == ["approver"]
    inbox = (await skipping_api.request("GET", "/api/v1/inbox?kind=work", role="approver")).json()
    mine = next(i for i in inbox if i["id"] == f"work:{item['id']}")
    assert mine["escalated"] is True
    decided = await skipping_api.request(
        "POST", f"/api/v1/inbox/{mine['id']}/decision", role="approver", json={"action": "start"}
    )
    assert decided.status_code == 200, decided.text
