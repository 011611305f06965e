"""Refusals: invalid transitions, finished instances, bad templates, bad input, missing rights."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from core.process.tables import GraphData
from tests.support.api import Api, eventually
from tests.support.process import count_events, events_of, node, template, unique_code


async def history_length(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)


async def test_invalid_transition_is_refused_with_allowed_states_and_leaves_no_trace(
    api: Api, engine: AsyncEngine, temporal_client: Client
) -> None:
    instance = await api.start("HS_STD")
    before_history = await history_length(temporal_client, instance["workflow_id"])
    before_events = await count_events(engine, instance["instance_id"])

    response = await api.transition(instance["instance_id"], 9)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "invalid_transition"
    assert "allowed next states: 1 (customer_onboarding), 2 (quote_generation)" in body["detail"]
    assert [s["id"] for s in body["allowed_next_states"]] == [1, 2]
    unknown = await api.transition(instance["instance_id"], 4242)
    assert unknown.status_code == 409 and unknown.json()["error"] == "invalid_transition"

    assert await history_length(temporal_client, instance["workflow_id"]) == before_history
    history = await temporal_client.get_workflow_handle(instance["workflow_id"]).fetch_history()
    assert not any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED for e in history.events)
    assert await count_events(engine, instance["instance_id"]) == before_events
    assert (await api.get(instance["instance_id"]))["current_state"]["id"] == 0


async def test_transition_on_finished_instance_is_refused(api: Api) -> None:
    instance = await api.start("HS_STD")
    for state in (2, 3, 5):  # quote rejected: a failure terminal
        assert (await api.transition(instance["instance_id"], state)).status_code == 200
    view = await api.get(instance["instance_id"])
    assert view["workflow_status"] == "completed" and view["success"] is False
    response = await api.transition(instance["instance_id"], 4)
    assert response.status_code == 409
    assert response.json()["error"] == "instance_finished"
    assert "takes no more transitions" in response.json()["detail"]


@pytest.mark.parametrize(
    ("rule", "states"),
    [
        ("unique_ids", [node(0, [], [1]), node(1, [0], []), node(1, [0], [])]),
        ("parent_child_agreement", [node(0, [], [1, 2]), node(1, [0], []), node(2, [], [])]),
        ("acyclic", [node(0, [], [1]), node(1, [0, 2], [2]), node(2, [1], [1, 3]), node(3, [2], [])]),
        ("reachable", [node(0, [], [1]), node(1, [0], []), node(2, [], [3]), node(3, [2], [])]),
        ("reaches_terminal", [node(0, [], [1, 2]), node(1, [0], [], terminal_flag=False), node(2, [0], [])]),
        (
            "terminal_without_children",
            [node(0, [], [1]), node(1, [0], [2], terminal_flag=True, success=True), node(2, [1], [])],
        ),
    ],
)
async def test_each_template_rule_gives_422_naming_state_and_rule(
    api: Api, rule: str, states: list[dict[str, Any]]
) -> None:
    response = await api.request("POST", "/api/v1/workflow-template", json=template(unique_code("BAD"), states))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_template" and body["rule"] == rule
    assert f"state {body['state_id']} ('s{body['state_id']}')" in body["detail"]


async def test_template_schema_errors_name_the_field(api: Api) -> None:
    bad = template(unique_code("BAD"), [node(0, [], [])])
    bad["workflow_graph"]["states"][0]["colour"] = "red"
    del bad["industry_sector"]
    response = await api.request("POST", "/api/v1/workflow-template", json=bad)
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert fields == {"industry_sector", "workflow_graph.states[0].colour"}


async def test_every_number_a_template_carries_is_bounded_at_save(api: Api) -> None:
    """Attack run three: avg_duration_days 1e15 was accepted, and every instance then failed its workflow
    task with an OverflowError."""
    cases = {
        "workflow_graph.states[0].avg_duration_days": {"avg_duration_days": 1e15},
        "workflow_graph.states[0].parent_ids[0]": {"parent_ids": [10**12]},
        "workflow_graph.states[0].approval.reject_to_state_id": {"approval": {"reject_to_state_id": -1}},
        "workflow_graph.states[0].approval.timeout_seconds": {"approval": {"timeout_seconds": 10**10}},
    }
    for field, extra in cases.items():
        bad = template(unique_code("BIG"), [{**node(0, [], [1]), **extra}, node(1, [0], [])])
        response = await api.request("POST", "/api/v1/workflow-template", json=bad)
        assert response.status_code == 422, (field, response.text)
        assert field in {p["field"] for p in response.json()["problems"]}, (field, response.json())
    big = template(unique_code("BIG"), [node(0, [], [1]), node(1, [0], [])])
    big["avg_duration_days"] = 10**6
    response = await api.request("POST", "/api/v1/workflow-template", json=big)
    assert response.status_code == 422 and response.json()["problems"][0]["field"] == "avg_duration_days"
    # The largest accepted value still runs: an instance starts and its deadline is computed.
    fine = template(unique_code("LONG"), [node(0, [], [1], avg_duration_days=3650), node(1, [0], [])])
    assert (await api.request("POST", "/api/v1/workflow-template", json=fine)).status_code == 201
    started = await api.start(fine["code"])
    assert (await api.transition(started["instance_id"], 1)).status_code == 200


async def test_templates_are_versioned_and_instances_keep_their_version(api: Api) -> None:
    code = unique_code("VER")
    v1 = [node(0, [], [1, 2]), node(1, [0], []), node(2, [0], [], success=False)]
    created = await api.request("POST", "/api/v1/workflow-template", json=template(code, v1))
    assert created.status_code == 201 and created.json()["version"] == 1
    old_instance = await api.start(code)

    v2 = [node(0, [], [3]), node(3, [0], [])]
    created2 = await api.request("POST", "/api/v1/workflow-template", json=template(code, v2, name="Second"))
    assert created2.status_code == 201 and created2.json()["version"] == 2
    new_instance = await api.start(code)
    assert new_instance["template_version"] == 2 and old_instance["template_version"] == 1

    assert (await api.transition(new_instance["instance_id"], 1)).status_code == 409
    assert (await api.transition(old_instance["instance_id"], 1)).status_code == 200  # still on v1
    assert (await api.transition(new_instance["instance_id"], 3)).status_code == 200

    latest = await api.request("GET", f"/api/v1/workflow-template/{code}", role="viewer")
    assert latest.json()["version"] == 2
    first = await api.request("GET", f"/api/v1/workflow-template/{code}?version=1", role="viewer")
    assert [s["id"] for s in first.json()["workflow_graph"]["states"]] == [0, 1, 2]
    by_id = await api.request("GET", f"/api/v1/workflow-template/{created.json()['id']}", role="viewer")
    assert by_id.json()["version"] == 1
    listing = await api.request("GET", f"/api/v1/workflow-template?code={code}&all_versions=true", role="viewer")
    assert [t["version"] for t in listing.json()["items"]] == [2, 1]
    assert (await api.request("GET", f"/api/v1/workflow-template?code={code}", role="viewer")).json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "path", "role", "body", "status"),
    [
        ("GET", "/api/v1/workflow-template", None, None, 401),
        ("POST", "/api/v1/workflow-instance", "viewer", {"template_code": "HS_STD"}, 403),
        ("POST", "/api/v1/workflow-instance", "approver", {"template_code": "HS_STD"}, 403),
        ("POST", "/api/v1/workflow-template", "operator", template("X_AUTH", [node(0, [], [])]), 403),
        ("PUT", f"/api/v1/workflow-instance/{uuid.uuid4()}/transition", "viewer", {"to_state_id": 1}, 403),
        ("PUT", f"/api/v1/workflow-instance/{uuid.uuid4()}/transition", "approver", {"to_state_id": 1}, 403),
        # Who may decide depends on the gate (its roles, then its escalation targets): an unknown
        # instance is a 404 to every reader; a real gate refuses others with 403 (test_approvals.py).
        ("POST", f"/api/v1/workflow-instance/{uuid.uuid4()}/approval", "operator", {"decision": "approve"}, 404),
        ("POST", f"/api/v1/workflow-instance/{uuid.uuid4()}/approval", "viewer", {"decision": "approve"}, 404),
    ],
)
async def test_authentication_and_roles(
    api: Api, method: str, path: str, role: str | None, body: dict[str, Any] | None, status: int
) -> None:
    response = await api.request(method, path, role=role, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_unknown_api_key_is_refused(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/workflow-template", headers={"Authorization": "Bearer not-a-real-key-1234567"}
    )
    assert response.status_code == 401 and response.json()["detail"] == "unknown API key"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "colour": "red"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "validation_error",
        ),
        ("POST", "/api/v1/workflow-instance", {"json": {"template_code": "NOPE"}}, 422, "unknown_template"),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "root_entity_id": str(uuid.uuid4())}},
            422,
            "unknown_entity",
        ),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "entity": {"name": "a"}, "root_entity_id": str(uuid.uuid4())}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "entity": {"name": "x" * 70_000}}},
            413,
            "payload_too_large",
        ),
        ("GET", "/api/v1/workflow-instance/not-a-uuid", {}, 422, "validation_error"),
        ("GET", f"/api/v1/workflow-instance/{uuid.uuid4()}", {}, 404, "not_found"),
        ("PUT", f"/api/v1/workflow-instance/{uuid.uuid4()}/transition", {"json": {"to_state_id": 1}}, 404, "not_found"),
        (
            "PUT",
            f"/api/v1/workflow-instance/{uuid.uuid4()}/transition",
            {"json": {"to_state_id": -1}},
            422,
            "validation_error",
        ),
        ("GET", "/api/v1/workflow-template/NO_SUCH_CODE", {}, 404, "not_found"),
        ("GET", "/api/v1/workflow-instance?limit=0", {}, 422, "validation_error"),
        ("GET", "/api/v1/workflow-instance?status=sleeping", {}, 422, "validation_error"),
        ("DELETE", "/api/v1/workflow-template", {}, 405, "method_not_allowed"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = await api.request(method, path, role="admin", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]


async def test_start_on_an_existing_root_entity(api: Api, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        root_id = (
            await conn.execute(
                text(
                    "INSERT INTO app.d_entity (entity_type, name, status) VALUES ('cust', 'Acme', 'Prospect') "
                    "RETURNING id"
                )
            )
        ).scalar_one()
    instance = await api.start("HS_STD", entity=None, root_entity_id=str(root_id))
    assert instance["root_entity_id"] == str(root_id)
    assert instance["created_entities"][0]["action"] == "updated"  # the customer itself becomes the Lead
    await api.transition(instance["instance_id"], 2)
    view = await api.get(instance["instance_id"])
    assert view["created_entities"][-1]["entity"] == "quote"
    listing = await api.request("GET", f"/api/v1/workflow-instance?root_entity_id={root_id}", role="viewer")
    assert [i["instance_id"] for i in listing.json()["items"]] == [instance["instance_id"]]


async def test_idempotency_key_returns_the_same_instance(api: Api, engine: AsyncEngine) -> None:
    key = str(uuid.uuid4())
    body = {"template_code": "HS_STD", "entity": {"name": "Retry Co"}}
    first = await api.request(
        "POST", "/api/v1/workflow-instance", role="operator", json=body, headers={"Idempotency-Key": key}
    )
    second = await api.request(
        "POST", "/api/v1/workflow-instance", role="operator", json=body, headers={"Idempotency-Key": key}
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["instance_id"] == second.json()["instance_id"]
    instance_id = first.json()["instance_id"]
    for state in (2, 3, 5):  # finish it; a late retry must not start a second run
        assert (await api.transition(instance_id, state)).status_code == 200
    late = await api.request(
        "POST", "/api/v1/workflow-instance", role="operator", json=body, headers={"Idempotency-Key": key}
    )
    assert late.status_code == 201 and late.json()["instance_id"] == instance_id
    assert late.json()["workflow_status"] == "completed" and late.json()["source"] == "database"
    other_key = await api.request(
        "POST", "/api/v1/workflow-instance", role="operator", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert other_key.json()["instance_id"] != instance_id
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(GraphData)
                .where(GraphData.id == uuid.UUID(first.json()["instance_id"]))
            )
        ).scalar_one()
    assert count == 1


async def test_list_filters_and_pagination(api: Api) -> None:
    code = unique_code("LST")
    states = [node(0, [], [1]), node(1, [0], [])]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, states))).status_code == 201
    ids = [(await api.start(code, name=f"c{i}"))["instance_id"] for i in range(3)]
    await api.transition(ids[0], 1)
    everything = await api.request("GET", f"/api/v1/workflow-instance?template_code={code}", role="viewer")
    assert everything.json()["total"] == 3
    done = await api.request("GET", f"/api/v1/workflow-instance?template_code={code}&status=completed", role="viewer")
    assert [i["instance_id"] for i in done.json()["items"]] == [ids[0]]
    at_start = await api.request("GET", f"/api/v1/workflow-instance?template_code={code}&state_id=0", role="viewer")
    assert at_start.json()["total"] == 2
    page = await api.request("GET", f"/api/v1/workflow-instance?template_code={code}&limit=2&offset=2", role="viewer")
    assert page.json()["total"] == 3 and len(page.json()["items"]) == 1
    templates = await api.request("GET", "/api/v1/workflow-template?industry_sector=hvac", role="viewer")
    assert [t["code"] for t in templates.json()["items"]] == ["HVAC_EMERG"]


async def test_instances_are_findable_by_search_attributes(api: Api, temporal_client: Client) -> None:
    instance = await api.start("HS_STD", name="Searchable Ltd")
    await api.transition(instance["instance_id"], 2)
    query = (
        f"WorkflowId = '{instance['workflow_id']}' AND TrellisTemplateCode = 'HS_STD' "
        "AND TrellisIndustrySector = 'home_services' AND TrellisCurrentState = 'quote_generation' "
        f"AND TrellisInstanceStatus = 'active' AND TrellisRootEntityId = '{instance['root_entity_id']}'"
    )

    async def found() -> bool:
        return (await temporal_client.count_workflows(query)).count == 1

    await eventually(found)
    description = await temporal_client.get_workflow_handle(instance["workflow_id"]).describe()
    assert await description.static_summary() == "Home Services - Standard v1 for Searchable Ltd"


async def test_a_cancelled_instance_ends_with_an_event_and_takes_no_transitions(api: Api, engine: AsyncEngine) -> None:
    started = await api.start("HS_STD", name="Cancel Me")
    instance_id = started["instance_id"]
    moved = await api.transition(instance_id, 1)
    assert moved.status_code == 200, moved.text

    viewer = await api.request("POST", f"/api/v1/workflow-instance/{instance_id}/cancel", role="viewer", json={})
    assert viewer.status_code == 403
    cancelled = await api.request(
        "POST", f"/api/v1/workflow-instance/{instance_id}/cancel", role="operator", json={"comment": "customer left"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["workflow_status"] == "cancelled" and cancelled.json()["allowed_next_states"] == []

    refused = await api.transition(instance_id, 2)
    assert refused.status_code == 409 and refused.json()["error"] == "instance_finished", refused.text
    assert "cancelled" in refused.json()["detail"]
    again = await api.request("POST", f"/api/v1/workflow-instance/{instance_id}/cancel", role="operator", json={})
    assert again.status_code == 409

    async def ended() -> dict[str, Any] | None:
        found = await api.get(instance_id)
        return found if found["source"] == "database" else None

    final = await eventually(ended)
    assert final["workflow_status"] == "cancelled" and final["success"] is False and final["completed_ts"]
    events = await events_of(engine, instance_id)
    cancels = [e for e in events if e["event_type"] == "instance_cancelled"]
    assert len(cancels) == 1 and cancels[0]["comment"] == "customer left" and cancels[0]["from_state_id"] == 1
    listed = await api.request("GET", "/api/v1/workflow-instance", role="viewer", params={"status": "cancelled"})
    assert instance_id in {i["instance_id"] for i in listed.json()["items"]}
