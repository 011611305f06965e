"""Deadline alerts (time-skipping server): an instance that stays in a state longer than the state's
avg_duration_days raises one alert, a notification and an inbox item for the template's owner role, from
a timer in the process workflow; it is acknowledged through the inbox. An instance that moves on in
time raises none."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from core.notifications.tables import Notification
from tests.support.api import Api
from tests.support.process import node, template, unique_code


async def alerts(api: Api, role: str) -> list[dict[str, object]]:
    response = await api.request("GET", "/api/v1/inbox?kind=deadline", role=role)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_state_held_too_long_raises_one_alert(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    code = unique_code("DEADLINE")
    graph = template(code, [node(0, [], [1]), node(1, [0], [2], avg_duration_days=2), node(2, [1], [])])
    graph["workflow_graph"]["owner_role"] = "approver"
    assert (await skipping_api.request("POST", "/api/v1/workflow-template", json=graph)).status_code == 201
    late = (await skipping_api.start(code, name="Late Job"))["instance_id"]
    prompt = (await skipping_api.start(code, name="Prompt Job"))["instance_id"]
    for instance in (late, prompt):
        assert (await skipping_api.transition(instance, 1)).status_code == 200

    await time_skipping_env.sleep(timedelta(days=1).total_seconds())
    assert (await skipping_api.transition(prompt, 2)).status_code == 200  # moves on in time
    assert not [a for a in await alerts(skipping_api, "approver") if late in str(a["id"])]
    await time_skipping_env.sleep(timedelta(days=1, hours=1).total_seconds())

    mine = [a for a in await alerts(skipping_api, "approver") if str(a["id"]).split(":")[1] in (late, prompt)]
    assert [a["id"] for a in mine] == [f"deadline:{late}:1"]
    assert mine[0]["entity_name"] == "Late Job" and mine[0]["actions"] == ["acknowledge"]
    assert not [a for a in await alerts(skipping_api, "operator") if a["id"] == mine[0]["id"]]  # not theirs
    async with engine.connect() as conn:
        notes = (
            (
                await conn.execute(
                    select(Notification.recipient).where(
                        Notification.template == "deadline_exceeded", Notification.source == f"process:{late}"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert notes == ["approver"]  # one alert

    refused = await skipping_api.request(
        "POST", f"/api/v1/inbox/{mine[0]['id']}/decision", role="operator", json={"action": "acknowledge"}
    )
    assert refused.status_code == 403, refused.text
    done = await skipping_api.request(
        "POST",
        f"/api/v1/inbox/{mine[0]['id']}/decision",
        role="approver",
        json={"action": "acknowledge", "comment": "on it"},
    )
    assert done.status_code == 200, done.text
    assert not [a for a in await alerts(skipping_api, "approver") if a["id"] == mine[0]["id"]]
    again = await skipping_api.request(
        "POST", f"/api/v1/inbox/{mine[0]['id']}/decision", role="approver", json={"action": "acknowledge"}
    )
    assert again.status_code == 409
