"""Rules running end to end: UC-1, the seed's example rules, every trigger type, conditions, scope,
execution order, max_executions under concurrency, loops, and the non-webhook actions."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.entities.tables import EntityLink
from tests.support.api import Api, eventually
from tests.support.automation import (
    create_entity,
    create_rule,
    executions,
    finished_executions,
    get_entity,
    patch_entity,
    unique_type,
)
from tests.support.servers import SmtpServer
from workflows.automation.schedules import schedule_id


async def inbox(api: Api, recipient: str) -> list[dict[str, object]]:
    response = await api.request("GET", f"/api/v1/notifications?recipient={recipient}", role="admin")
    assert response.status_code == 200
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_uc1_auto_assign_pm_on_project_create(api: Api) -> None:
    project_type = unique_type("project")
    pm = f"james-miller-{uuid.uuid4().hex[:6]}"
    rule = await create_rule(
        api,
        project_type,
        [
            {"type": "update_field", "field": "assigned_to", "value": pm},
            {"type": "send_notification", "template": "project_created", "recipients": [pm]},
        ],
        workflow_name="Auto-assign PM on Project Create",
    )
    project = await create_entity(api, project_type, "HVAC Installation - Store #45")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed" and run["execution_number"] == 1
    assert run["workflow_id"] == f"automation-{rule['id']}-{run['event_id']}"
    assert (await get_entity(api, project_type, project["id"]))["fields"]["assigned_to"] == pm
    [note] = await inbox(api, pm)
    assert note["subject"] == "New project assigned: HVAC Installation - Store #45" and note["read_ts"] is None
    read = await api.request("POST", f"/api/v1/notifications/{note['id']}/read", role="admin")
    assert read.json()["read_ts"] is not None
    assert await inbox(api, pm) == [read.json()]
    unread = await api.request("GET", f"/api/v1/notifications?recipient={pm}&unread=true", role="admin")
    assert unread.json()["total"] == 0
    stored = (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}")).json()
    assert stored["execution_count"] == 1 and stored["last_executed_ts"] is not None


async def test_seed_rule_2_planning_tasks_on_status_change(api: Api, engine: AsyncEngine) -> None:
    project_type, task_type = unique_type("project"), unique_type("task")
    rule = await create_rule(
        api,
        project_type,
        [
            {"type": "create_entity", "entity_type": task_type, "name": name, "status": "Open"}
            for name in ("Kickoff Meeting", "Resource Allocation", "Timeline Planning")
        ],
        trigger_action_type="status_change",
        action_entity_type=task_type,
        trigger_conditions={"expression": 'new.status == "Planning"'},
    )
    project = await create_entity(api, project_type, "Store #46", status="Draft")
    await patch_entity(api, project_type, project["id"], status="Review")
    await patch_entity(api, project_type, project["id"], status="Planning")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed"
    tasks = (await api.request("GET", f"/api/v1/entities/{task_type}", role="viewer")).json()["items"]
    assert sorted(t["name"] for t in tasks) == ["Kickoff Meeting", "Resource Allocation", "Timeline Planning"]
    async with engine.connect() as conn:
        links = (
            await conn.execute(
                select(func.count())
                .select_from(EntityLink)
                .where(EntityLink.parent_entity_id == uuid.UUID(project["id"]))
            )
        ).scalar_one()
    assert links == 3


async def test_seed_rule_3_notify_pm_on_task_completion(api: Api) -> None:
    task_type = unique_type("task")
    manager = f"pm-{uuid.uuid4().hex[:6]}"
    rule = await create_rule(
        api,
        task_type,
        [{"type": "send_notification", "template": "task_completed", "recipients": [manager]}],
        trigger_action_type="status_change",
        trigger_conditions={"expression": 'new.status == "Completed" && has(new.fields.assigned_to)'},
    )
    unassigned = await create_entity(api, task_type, "Sweep", status="Open")
    assigned = await create_entity(api, task_type, "Wire panel", status="Open", fields={"assigned_to": "ann"})
    await patch_entity(api, task_type, unassigned["id"], status="Completed")
    await patch_entity(api, task_type, assigned["id"], status="Completed")
    await finished_executions(api, rule["id"], 1)
    await asyncio.sleep(0.5)
    assert len(await executions(api, rule["id"])) == 1  # the unassigned task did not match
    [note] = await inbox(api, manager)
    assert note["subject"] == "Task completed: Wire panel" and note["entity_id"] == assigned["id"]


async def test_seed_rule_4_quote_accepted_to_order_with_email(
    api: Api, smtp_server: SmtpServer, engine: AsyncEngine
) -> None:
    customer_type, quote_type, order_type = "customer", unique_type("quote"), unique_type("order")
    email = f"buyer-{uuid.uuid4().hex[:6]}@example.com"
    rule = await create_rule(
        api,
        quote_type,
        [
            {
                "type": "create_entity",
                "entity_type": order_type,
                "name": "Order for {{entity.name}}",
                "status": "Confirmed",
                "fields": {"from_quote_id": "{{entity.id}}", "amount": "{{entity.amount}}"},
            },
            {"type": "update_field", "field": "converted_to_order", "value": True},
            {"type": "send_email", "template": "order_confirmation", "to": "{{customer.email}}"},
        ],
        trigger_action_type="status_change",
        action_entity_type=order_type,
        trigger_conditions={"expression": 'new.status == "Accepted"'},
        workflow_name="Convert Quote to Order on Acceptance",
    )
    customer = await create_entity(api, customer_type, "Dana Buyer", fields={"email": email})
    quote = await create_entity(
        api, quote_type, "Q-77", status="Sent", fields={"amount": 1250}, parent_id=customer["id"]
    )
    await patch_entity(api, quote_type, quote["id"], status="Accepted")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [order] = (await api.request("GET", f"/api/v1/entities/{order_type}", role="viewer")).json()["items"]
    assert order["name"] == "Order for Q-77" and order["fields"] == {"from_quote_id": quote["id"], "amount": "1250"}
    assert (await get_entity(api, quote_type, quote["id"]))["fields"]["converted_to_order"] is True
    [mail] = smtp_server.mailbox.to(email)
    assert mail["Subject"] == "Your order is confirmed"
    assert "Hello Dana Buyer" in mail.get_payload() and mail["Message-ID"].endswith("@trellis>")


async def test_every_trigger_type(api: Api, temporal_client: Client) -> None:
    kind = unique_type("asset")
    rules = {
        trigger: await create_rule(
            api,
            kind,
            [
                {
                    "type": "send_notification",
                    "template": "status_changed",
                    "recipients": [f"{kind}-{trigger}"],
                    "subject": trigger,
                    "body": "{{event.event_kind}} {{event.field_name}}",
                }
            ],
            trigger_action_type=trigger,
            **extra,
        )
        for trigger, extra in {
            "create": {},
            "update": {},
            "delete": {},
            "status_change": {},
            "field_change": {"trigger_conditions": {"field": "location"}},
        }.items()
    }
    asset = await create_entity(api, kind, "Compressor", status="Stored", fields={"location": "A"})
    await patch_entity(api, kind, asset["id"], fields={"serial": "S1"})  # update + field_change(serial)
    await patch_entity(api, kind, asset["id"], status="In use", fields={"location": "B"})
    assert (await api.request("DELETE", f"/api/v1/entities/{kind}/{asset['id']}", role="operator")).status_code == 200
    expected = {"create": 1, "update": 2, "delete": 1, "status_change": 1, "field_change": 1}
    for trigger, count in expected.items():
        runs = await finished_executions(api, rules[trigger]["id"], count)
        assert [r["status"] for r in runs] == ["completed"] * count, trigger
    [moved] = await inbox(api, f"{kind}-field_change")
    assert moved["body"] == "field_change location"

    scheduled = await create_rule(
        api,
        kind,
        [{"type": "create_entity", "entity_type": kind, "name": "made by schedule"}],
        trigger_action_type="scheduled",
        schedule_cron="0 3 * * *",
    )
    await temporal_client.get_schedule_handle(schedule_id(scheduled["id"])).trigger()
    [run] = await finished_executions(api, scheduled["id"], 1)
    assert run["status"] == "completed"
    made = (await api.request("GET", f"/api/v1/entities/{kind}?name=made%20by%20schedule", role="viewer")).json()
    assert made["total"] == 1


async def test_specific_scope_and_execution_order(api: Api) -> None:
    kind = unique_type("site")
    watched = await create_entity(api, kind, "Watched")
    other = await create_entity(api, kind, "Other")
    late = await create_rule(
        api,
        kind,
        [{"type": "update_field", "field": "late", "value": 1}],
        trigger_action_type="update",
        execution_order=20,
    )
    early = await create_rule(
        api,
        kind,
        [{"type": "update_field", "field": "early", "value": 1}],
        trigger_action_type="update",
        execution_order=10,
        trigger_scope="specific",
        trigger_entity_id=watched["id"],
    )
    await patch_entity(api, kind, watched["id"], status="Touched")
    await patch_entity(api, kind, other["id"], status="Touched")
    # Each rule's update_field emits an update event that the other rule matches in turn, until the
    # loop guard stops them; look at the runs of the first event on the watched entity.
    await finished_executions(api, early["id"], 1)
    await finished_executions(api, late["id"], 2)
    await asyncio.sleep(1.0)
    early_runs = sorted(await executions(api, early["id"]), key=lambda r: r["started_ts"])
    late_runs = await executions(api, late["id"])
    first = early_runs[0]
    assert first["status"] == "completed"
    watched_late = next(r for r in late_runs if r["event_id"] == first["event_id"])
    assert first["finished_ts"] <= watched_late["started_ts"]  # rules of one event run in execution_order
    # The ping-pong ends: nothing is left running, and the loop guard is what stopped it.
    everything = early_runs + late_runs
    assert all(r["status"] in ("completed", "skipped") for r in everything)
    assert any(r["status"] == "skipped" and "own effect" in r["reason"] for r in everything)
    assert "early" not in (await get_entity(api, kind, other["id"]))["fields"]


async def test_max_executions_holds_under_20_concurrent_events(api: Api) -> None:
    kind = unique_type("widget")
    rule = await create_rule(
        api, kind, [{"type": "update_field", "field": "promoted", "value": True}], max_executions=5
    )
    await asyncio.gather(*(create_entity(api, kind, f"w{i}") for i in range(20)))

    async def settled() -> bool:
        stored = (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}")).json()
        runs = await executions(api, rule["id"])
        return not stored["active_flag"] and all(r["status"] != "running" for r in runs)

    await eventually(settled, attempts=300)
    await asyncio.sleep(1.0)  # let any straggling event workflow finish
    runs = await executions(api, rule["id"])
    completed = [r for r in runs if r["status"] == "completed"]
    assert len(completed) == 5 and sorted(r["execution_number"] for r in completed) == [1, 2, 3, 4, 5]
    assert all(r["status"] == "skipped" for r in runs if r["status"] != "completed")
    stored = (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}")).json()
    assert stored["execution_count"] == 5 and stored["active_flag"] is False
    widgets = (await api.request("GET", f"/api/v1/entities/{kind}?limit=50", role="viewer")).json()["items"]
    assert sum(1 for w in widgets if w["fields"].get("promoted")) == 5


async def test_run_script_and_missing_template_values(api: Api) -> None:
    kind = unique_type("estimate")
    scripted = await create_rule(
        api, kind, [{"type": "run_script", "script_id": "sum_line_items", "params": {"tax_rate": 0.1}}]
    )
    estimate = await create_entity(
        api, kind, "E-1", fields={"line_items": [{"quantity": 2, "unit_price": 50}, {"unit_price": 100}]}
    )
    [run] = await finished_executions(api, scripted["id"], 1)
    assert run["status"] == "completed"
    fields = (await get_entity(api, kind, estimate["id"]))["fields"]
    assert (fields["subtotal"], fields["tax"], fields["total"]) == (200.0, 20.0, 220.0)

    other = unique_type("estimate")
    broken = await create_rule(
        api,
        other,
        [
            {
                "type": "send_notification",
                "template": "x",
                "recipients": ["ops"],
                "subject": "s",
                "body": "{{ customer.phone }}",
            }
        ],
    )
    await create_entity(api, other, "E-2")
    [failed] = await finished_executions(api, broken["id"], 1)
    assert failed["status"] == "failed"
    assert "refers to a missing value" in failed["reason"] and "customer" in failed["reason"]


async def test_a_rule_loop_is_stopped_with_a_reason(api: Api) -> None:
    kind = unique_type("counter")
    bump = await create_rule(
        api, kind, [{"type": "update_field", "field": "n", "value": "{{ entity.n + 1 }}"}], trigger_action_type="update"
    )
    counter = await create_entity(api, kind, "c", fields={"n": 0})
    await patch_entity(api, kind, counter["id"], status="go")
    runs = await finished_executions(api, bump["id"], 2)
    assert [r["status"] for r in sorted(runs, key=lambda r: r["started_ts"])] == ["completed", "skipped"]
    assert (
        "triggered again by its own effect on the same entity"
        in next(r for r in runs if r["status"] == "skipped")["reason"]
    )

    chain = unique_type("node")
    spawn = await create_rule(
        api, chain, [{"type": "create_entity", "entity_type": chain, "name": "child of {{entity.name}}"}]
    )
    await create_entity(api, chain, "root")
    runs = await finished_executions(api, spawn["id"], 6)
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert len([r for r in runs if r["status"] == "completed"]) == 5 and len(skipped) == 1
    assert "reached the limit of 5" in skipped[0]["reason"]


async def test_process_instance_entity_changes_trigger_rules(api: Api) -> None:
    job = unique_type("job")
    code = f"AUTO_{uuid.uuid4().hex[:6].upper()}"
    states = [
        {"id": 0, "name": "opened", "parent_ids": [], "child_ids": [1], "entity_name": job, "entity_status": "Open"},
        {
            "id": 1,
            "name": "done",
            "parent_ids": [0],
            "child_ids": [],
            "entity_name": job,
            "entity_status": "Done",
            "terminal_flag": True,
            "success": True,
        },
    ]
    template = {"code": code, "name": "Auto", "industry_sector": "testing", "workflow_graph": {"states": states}}
    assert (await api.request("POST", "/api/v1/workflow-template", json=template)).status_code == 201
    watcher = f"ops-{uuid.uuid4().hex[:6]}"
    rule = await create_rule(
        api,
        job,
        [{"type": "send_notification", "template": "status_changed", "recipients": [watcher]}],
        trigger_action_type="status_change",
        trigger_conditions={"expression": 'new.status == "Done"'},
    )
    instance = await api.start(code, name="Boiler service")
    assert (await api.transition(instance["instance_id"], 1)).status_code == 200
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed"
    [note] = await inbox(api, watcher)
    assert note["subject"] == f"{job} Boiler service is now Done"


async def test_update_field_on_a_related_entity_and_search_attributes(api: Api, temporal_client: Client) -> None:
    project_type, task_type = unique_type("project"), unique_type("task")
    rule = await create_rule(
        api,
        task_type,
        [
            {
                "type": "update_field",
                "field": "status",
                "value": "Has done work",
                "target": "parent",
                "target_entity_type": project_type,
            }
        ],
        trigger_action_type="status_change",
        action_entity_type=project_type,
    )
    project = await create_entity(api, project_type, "Parent project", status="Active")
    task = await create_entity(api, task_type, "Child task", status="Open", parent_id=project["id"])
    await patch_entity(api, task_type, task["id"], status="Done")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed"
    assert (await get_entity(api, project_type, project["id"]))["status"] == "Has done work"

    query = (
        f"TrellisRuleId = '{rule['id']}' AND TrellisEntityType = '{task_type}' "
        f"AND TrellisEntityId = '{task['id']}' AND TrellisTrigger = 'status_change'"
    )

    async def findable() -> bool:
        return (await temporal_client.count_workflows(query)).count == 1

    await eventually(findable)
