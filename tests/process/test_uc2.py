"""UC-2 through HTTP: a Home Services customer from lead to payment received."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api
from tests.support.process import children_of, entities_by_id, events_of, graph_row

UC2_PATH = [1, 2, 4, 6, 7, 8, 9]  # lead → onboarding → quote → accepted (order) → work → invoice → paid


async def test_uc2_lead_to_payment_received(api: Api, engine: AsyncEngine) -> None:
    started = await api.start("HS_STD", name="Jane Doe")
    instance_id = started["instance_id"]
    assert started["workflow_id"] == f"process-{instance_id}"  # derived from the instance id alone
    assert started["current_state"]["name"] == "lead_generation"
    assert [s["id"] for s in started["allowed_next_states"]] == [1, 2]
    root_id = started["root_entity_id"]

    for to_state in UC2_PATH:
        response = await api.transition(
            instance_id, to_state, comment=f"moving to {to_state}", fields={"step_note": f"n{to_state}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["current_state"]["id"] == to_state

    final = await api.get(instance_id)
    assert final["source"] == "database"
    assert final["workflow_status"] == "completed" and final["success"] is True
    assert final["allowed_next_states"] == []
    assert [(h["from"], h["to"]) for h in final["state_history"]] == [
        (None, 0),
        (0, 1),
        (1, 2),
        (2, 4),
        (4, 6),
        (6, 7),
        (7, 8),
        (8, 9),
    ]
    assert {h["actor"] for h in final["state_history"]} == {"operator-user"}

    row = await graph_row(engine, instance_id)
    assert row["current_state_id"] == 9 and row["current_state_name"] == "payment_received"
    assert row["workflow_status"] == "completed" and row["success_flag"] is True
    assert row["completed_ts"] is not None and row["completed_ts"] >= row["started_ts"]
    assert row["template_code"] == "HS_STD" and row["last_seq"] == 8
    assert row["state_history"] == final["state_history"]

    created = row["created_entities"]
    assert [(c["state_id"], c["entity"], c["action"], c["status"]) for c in created] == [
        (0, "cust", "created", "Lead"),
        (1, "cust", "updated", "Qualified"),
        (2, "quote", "created", "Draft"),
        (4, "order", "created", "Confirmed"),
        (6, "task", "created", "Scheduled"),
        (7, "task", "updated", "Completed"),
        (8, "invoice", "created", "Sent"),
        (9, "invoice", "updated", "Paid"),
    ]
    entities = await entities_by_id(engine, [c["id"] for c in created])
    by_type = {e["entity_type"]: e for e in entities.values()}
    assert len(entities) == 5
    assert by_type["cust"]["id"].__str__() == root_id and by_type["cust"]["name"] == "Jane Doe"
    assert by_type["cust"]["status"] == "Qualified"
    assert by_type["cust"]["fields"] == {"email": "jane@example.com", "step_note": "n1"}
    assert by_type["quote"]["status"] == "Draft" and by_type["quote"]["name"] == "quote for Jane Doe"
    assert by_type["order"]["status"] == "Confirmed"
    assert by_type["task"]["status"] == "Completed" and by_type["task"]["fields"] == {"step_note": "n7"}
    assert by_type["invoice"]["status"] == "Paid"
    links = await children_of(engine, root_id)
    assert sorted(link["child_entity_type"] for link in links) == ["invoice", "order", "quote", "task"]

    events = await events_of(engine, instance_id)
    kinds = Counter(e["event_type"] for e in events)
    assert kinds == {"state_transition": 8, "entity_created": 5, "entity_updated": 3, "instance_completed": 1}
    transitions = [(e["from_state_id"], e["to_state_id"]) for e in events if e["event_type"] == "state_transition"]
    assert transitions == [(None, 0), (0, 1), (1, 2), (2, 4), (4, 6), (6, 7), (7, 8), (8, 9)]
    order_event = next(e for e in events if e["event_type"] == "entity_created" and e["to_state_id"] == 4)
    assert str(order_event["created_entity_id"]) == str(by_type["order"]["id"])
    assert all(str(e["trigger_entity_id"]) == root_id for e in events)
    assert {e["actor"] for e in events if e["seq"] > 1} == {"operator-user"}
    assert (
        next(e for e in events if e["to_state_id"] == 4 and e["event_type"] == "state_transition")["comment"]
        == "moving to 4"
    )
