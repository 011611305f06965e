"""Rules CRUD and save-time validation: an invalid rule gets 422 saying which field and why."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import Client

from tests.support.api import Api
from tests.support.automation import create_rule, unique_type
from workflows.automation.schedules import schedule_id

NOTIFY = {"type": "send_notification", "template": "task_completed", "recipients": ["pm"]}


def rule(**overrides: Any) -> dict[str, Any]:
    return {
        "workflow_name": "r",
        "trigger_entity_type": "task",
        "trigger_action_type": "create",
        "action_entity_type": "task",
        "actions": [NOTIFY],
    } | overrides


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (rule(trigger_action_type="created"), "trigger_action_type", "Input should be"),
        (rule(trigger_entity_type="Task!"), "trigger_entity_type", "pattern"),
        (rule(trigger_scope="specific"), "body", "trigger_entity_id is required"),
        (rule(trigger_conditions={"expression": "new.status =="}), "trigger_conditions.expression", "does not parse"),
        (rule(trigger_conditions={"language": "python"}), "trigger_conditions.language", "unknown field"),
        (rule(trigger_conditions={"field": "x"}), "body", "only for trigger_action_type 'field_change'"),
        (rule(actions=[]), "actions", "at least 1"),
        (rule(actions=[{"type": "launch_rocket"}]), "actions[0]", "does not match any of the expected tags"),
        (
            rule(actions=[{"type": "run_script", "script_id": "rm -rf"}]),
            "actions[0].run_script.script_id",
            "unknown script 'rm -rf'",
        ),
        (
            rule(actions=[{"type": "send_email", "template": "nope", "to": "a@b.c"}]),
            "actions[0].send_email",
            "unknown message template 'nope'",
        ),
        (
            rule(actions=[{"type": "send_email", "template": "welcome_email", "to": "{{ entity.name"}]),
            "actions[0].send_email",
            "does not parse",
        ),
        (
            rule(actions=[{"type": "update_field", "field": "x", "value": 1, "target": "parent"}]),
            "actions[0].update_field",
            "needs target_entity_type",
        ),
        (
            rule(actions=[{"type": "call_webhook", "url": "ftp://example.com/x"}]),
            "actions[0].call_webhook.url",
            "http:// or https://",
        ),
        (
            rule(actions=[{"type": "call_webhook", "url": "https://{{entity.host}}/x"}]),
            "actions[0].call_webhook.url",
            "cannot be templated",
        ),
        (
            rule(actions=[{"type": "call_webhook", "url": "https://example.com", "headers": {"webhook-id": "x"}}]),
            "actions[0].call_webhook.headers",
            "set by Trellis",
        ),
        (rule(trigger_action_type="scheduled"), "body", "needs schedule_cron"),
        (rule(trigger_action_type="scheduled", schedule_cron="61 * * * *"), "body", "not a valid 5-field cron"),
        (rule(schedule_cron="* * * * *"), "body", "only for trigger_action_type 'scheduled'"),
        (rule(max_executions=0), "body", "-1 (unlimited) or at least 1"),
        (
            rule(
                trigger_action_type="scheduled",
                schedule_cron="0 9 * * *",
                actions=[{"type": "update_field", "field": "x", "value": 1}],
            ),
            "body",
            "has no trigger entity",
        ),
    ],
)
async def test_malformed_rules_get_422_naming_the_field(api: Api, body: dict[str, Any], field: str, words: str) -> None:
    response = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert any(p["field"] == field and words in p["message"] for p in problems), problems


async def test_rule_crud_and_roles(api: Api) -> None:
    kind = unique_type("task")
    created = await create_rule(
        api, kind, [NOTIFY], execution_order=3, trigger_conditions={"expression": 'new.status == "Done"'}
    )
    assert created["webhook_secret"].startswith("whsec_") and created["execution_count"] == 0
    as_viewer = await api.request("GET", f"/api/v1/workflow-automation/{created['id']}", role="viewer")
    assert as_viewer.status_code == 200 and as_viewer.json()["webhook_secret"] is None
    assert (
        await api.request("POST", "/api/v1/workflow-automation", role="operator", json=rule(trigger_entity_type=kind))
    ).status_code == 403

    replaced = await api.request(
        "PUT",
        f"/api/v1/workflow-automation/{created['id']}",
        json=rule(trigger_entity_type=kind, action_entity_type=kind, workflow_name="renamed"),
    )
    assert replaced.status_code == 200 and replaced.json()["workflow_name"] == "renamed"
    assert replaced.json()["webhook_secret"] == created["webhook_secret"]
    listing = await api.request("GET", f"/api/v1/workflow-automation?trigger_entity_type={kind}", role="viewer")
    assert [r["id"] for r in listing.json()["items"]] == [created["id"]]

    deactivated = await api.request("DELETE", f"/api/v1/workflow-automation/{created['id']}")
    assert deactivated.status_code == 200 and deactivated.json()["active_flag"] is False
    purged = await api.request("DELETE", f"/api/v1/workflow-automation/{created['id']}?purge=true")
    assert purged.status_code == 200
    assert (await api.request("GET", f"/api/v1/workflow-automation/{created['id']}")).status_code == 404
    assert (await api.request("GET", f"/api/v1/workflow-automation/{uuid.uuid4()}")).status_code == 404


async def test_scheduled_rule_owns_a_temporal_schedule(api: Api, temporal_client: Client) -> None:
    kind = unique_type("report")
    created = await create_rule(
        api,
        kind,
        [{"type": "create_entity", "entity_type": kind, "name": "weekly report {{rule.name}}"}],
        trigger_action_type="scheduled",
        schedule_cron="0 9 * * 1",
        workflow_name="weekly",
    )
    handle = temporal_client.get_schedule_handle(schedule_id(created["id"]))
    described = await handle.describe()
    assert described.schedule.spec.cron_expressions == ["0 9 * * 1"] or described.schedule.spec.calendars
    assert described.schedule.state.paused is False

    body = rule(
        trigger_entity_type=kind,
        action_entity_type=kind,
        trigger_action_type="scheduled",
        schedule_cron="30 8 * * *",
        actions=created["actions"],
    )
    assert (await api.request("PUT", f"/api/v1/workflow-automation/{created['id']}", json=body)).status_code == 200
    assert (await api.request("DELETE", f"/api/v1/workflow-automation/{created['id']}")).status_code == 200
    assert (await handle.describe()).schedule.state.paused is True
    assert (await api.request("DELETE", f"/api/v1/workflow-automation/{created['id']}?purge=true")).status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - any "not found" from the server
        await handle.describe()
