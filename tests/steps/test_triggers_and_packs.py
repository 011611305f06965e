"""Step workflows started by rules (an entity event, a cron Schedule, a CEL threshold: one execution per
event, recorded with its trigger), a child workflow, continue-as-new, and the example packs end to end
against the scripted OpenAI-protocol server and the HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, ScheduleActionResult, ScheduleHandle, WorkflowExecutionStatus

from core.steps.packs import WORKFLOW_PACKS
from tests.support.api import Api, eventually, make_settings, open_api
from tests.support.automation import create_entity, create_rule, finished_executions, get_entity, unique_type
from tests.support.servers import LlmServer, WebhookServer
from tests.support.steps import create, execute, finished, run, steps_by_name, unique_name, workflow


async def executions_of(api: Api, name: str, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        response = await api.request("GET", f"/api/v1/workflow-executions?workflow={name}", role="viewer")
        items = [e for e in response.json()["items"] if e["status"] in ("completed", "failed")]
        return items if len(items) >= count else None

    return await eventually(found, attempts=300)  # type: ignore[no-any-return]


async def until_the_schedule_may_start_again(handle: ScheduleHandle) -> None:
    """The rule's schedule skips an action while its last one still runs (overlap SKIP), and names each
    started workflow by the second it started in. Wait until the first action's workflow has closed (its
    step execution can finish before the rule's workflow records the run) and that second has passed, so a
    second trigger starts a second workflow instead of being skipped, as it was once under CI load."""

    async def idle() -> ScheduleActionResult | None:
        info = (await handle.describe()).info
        return info.recent_actions[-1] if not info.running_actions and info.recent_actions else None

    last = await eventually(idle, attempts=300)
    next_second = last.started_at.replace(microsecond=0) + timedelta(seconds=1)
    await asyncio.sleep(max(0.0, (next_second - datetime.now(UTC)).total_seconds()))


def tag_step(kind: str) -> dict[str, Any]:
    return {
        "name": "tag",
        "tool": "entity.update",
        "params": {
            "id": "${input.entity_id}",
            "fields": {"tagged_by": "${context.source}", "amount": "${input.amount}"},
        },
    }


async def test_start_workflow_from_an_entity_event_and_a_threshold(api: Api) -> None:
    kind = unique_type("wf_event")
    name = unique_name("on_event")
    await create(api, workflow(name, [tag_step(kind)]))
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "start_workflow",
                "workflow": name,
                "input": {"entity_id": "{{entity.id}}", "amount": "{{entity.fields.amount}}"},
                "context": {"source": "rule"},
            }
        ],
        trigger_action_type="update",
        trigger_conditions={"expression": "new.fields.amount >= 4167 && old.fields.amount < 4167"},
    )
    entity = await create_entity(api, kind, "Revenue", fields={"amount": 100})
    for amount in (1000, 5000, 6000):  # only the crossing of the threshold starts an execution
        response = await api.request(
            "PATCH", f"/api/v1/entities/{kind}/{entity['id']}", role="operator", json={"fields": {"amount": amount}}
        )
        assert response.status_code == 200, response.text
    [done] = await executions_of(api, name, 1)
    assert done["status"] == "completed", done
    assert done["trigger"]["kind"] == "rule" and done["trigger"]["rule_id"] == rule["id"]
    assert done["input"] == {"entity_id": entity["id"], "amount": 5000}
    tagged = await get_entity(api, kind, entity["id"])
    assert tagged["fields"]["tagged_by"] == "rule" and tagged["fields"]["amount"] == 5000
    runs = await finished_executions(api, rule["id"], 1)
    assert [r["status"] for r in runs] == ["completed"]
    response = await api.request("GET", f"/api/v1/workflow-executions?workflow={name}", role="viewer")
    assert response.json()["total"] == 1


async def test_start_workflow_from_a_schedule(api: Api, temporal_client: Client) -> None:
    kind = unique_type("wf_cron")
    name = unique_name("daily_ops")
    target = await create_entity(api, kind, "Daily operations")
    await create(api, workflow(name, [tag_step(kind)]))
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "start_workflow",
                "workflow": name,
                "input": {"entity_id": "{{entity.id}}", "amount": 1},
                "context": {"source": "schedule"},
            }
        ],
        trigger_action_type="scheduled",
        schedule_cron="0 9 * * *",
        trigger_scope="specific",
        trigger_entity_id=target["id"],
    )
    handle = temporal_client.get_schedule_handle(f"automation-schedule-{rule['id']}")
    await handle.trigger()
    [first] = await executions_of(api, name, 1)
    await until_the_schedule_may_start_again(handle)
    await handle.trigger()
    both = await executions_of(api, name, 2)
    assert len({e["id"] for e in both}) == 2 and all(e["trigger"]["event_kind"] == "scheduled" for e in both)
    assert first["status"] == "completed"
    assert (await get_entity(api, kind, target["id"]))["fields"]["tagged_by"] == "schedule"


async def test_a_rule_naming_a_missing_workflow_fails_its_execution_with_the_reason(api: Api) -> None:
    kind = unique_type("wf_missing")
    rule = await create_rule(api, kind, [{"type": "start_workflow", "workflow": unique_name("absent")}])
    await create_entity(api, kind, "x")
    [run_] = await finished_executions(api, rule["id"], 1)
    assert run_["status"] == "failed" and "does not exist" in run_["reason"]


async def test_workflow_run_starts_a_child_and_returns_its_output(api: Api) -> None:
    child = unique_name("child")
    await create(
        api,
        workflow(
            child,
            [
                {
                    "name": "make",
                    "tool": "entity.create",
                    "params": {"entity_type": "child_made", "name": "${input.label}"},
                }
            ],
        ),
    )
    done = await run(
        api,
        [
            {
                "name": "sub",
                "tool": "workflow.run",
                "params": {"workflow": child, "input": {"label": "from ${input.who}"}},
            },
            {"name": "after", "tool": "entity.get", "params": {"id": "${sub.output.make.id}"}},
        ],
        {"who": "parent"},
    )
    assert done["status"] == "completed", done
    assert done["output"]["after"]["name"] == "from parent"
    child_run = await api.request("GET", f"/api/v1/workflow-executions/{done['output']['sub']['execution_id']}")
    assert child_run.json()["parent_execution_id"] == done["id"]
    assert child_run.json()["trigger"]["kind"] == "workflow.run"


async def test_a_long_execution_continues_as_new_and_keeps_its_variables(
    postgres_url: str, temporal_address: str, task_queue: str, temporal_client: Client, worker: None
) -> None:
    lifespan, client = await open_api(make_settings(postgres_url, temporal_address, task_queue, steps_history_limit=50))
    api = Api(client)
    try:
        steps = [
            {
                "name": "s0",
                "tool": "entity.create",
                "params": {"entity_type": "can_test", "name": "n0", "fields": {"n": 0}},
            }
        ]
        for i in range(1, 12):
            steps.append(
                {
                    "name": f"s{i}",
                    "tool": "entity.update",
                    "params": {"id": "${s0.id}", "fields": {"n": i, "previous": f"${{s{i - 1}.fields.n}}"}},
                }
            )
        done = await run(api, steps)
        assert done["status"] == "completed", done
        assert done["output"]["s11"]["fields"] == {"n": 11, "previous": 10}
        assert len(done["steps"]) == 12
        runs = [w async for w in temporal_client.list_workflows(f"WorkflowId = '{done['temporal_workflow_id']}'")]
        assert sum(w.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for w in runs) >= 1
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


# --------------------------------------------------------------------------- packs


async def test_pack_quote_to_order(api: Api) -> None:
    quote = await create_entity(
        api, "quote", "Q-1001 Acme", status="Accepted", fields={"total": 12500.75, "currency": "EUR"}
    )
    started = await execute(api, "quote_to_order", {"quote_id": quote["id"]}, context={"sales_recipient": "sales"})
    done = await finished(api, started["id"])
    assert done["status"] == "completed", done
    order = done["output"]["order"]
    assert order["entity_type"] == "order" and order["fields"]["total"] == 12500.75
    assert isinstance(order["fields"]["total"], float)
    inbox = await api.request("GET", "/api/v1/notifications?recipient=sales&limit=200")
    assert any(n["subject"] == f"Order created: Order for {quote['name']}" for n in inbox.json()["items"])


async def test_pack_lead_qualification(api: Api, llm_server: LlmServer) -> None:
    lead = await create_entity(api, "lead", "Globex [case:lead-1]", fields={"budget": 50000})
    done = await finished(api, (await execute(api, "lead_qualification", {"lead_id": lead["id"]}))["id"])
    assert done["status"] == "completed", done
    updated = await get_entity(api, "lead", lead["id"])
    assert updated["status"] == "Qualified"
    assert updated["fields"]["lead_score"] == 82 and updated["fields"]["expected_revenue"] == 48000
    statuses = {name: s["status"] for name, s in steps_by_name(done).items()}
    assert statuses["disqualify"] == "skipped"
    calls = llm_server.calls("lead-1")
    assert [c["agent"] for c in calls] == ["lead_scorer", "revenue_tracker"]
    revenue_input = json.loads(calls[1]["messages"][1]["content"])
    assert revenue_input["score"] == 82  # one agent's output feeds the next, as a number

    cold = await create_entity(api, "lead", "Initech [case:lead-2]")
    llm_server.script("lead-2", "lead_scorer", [{"score": 12, "qualified": False}])
    done = await finished(api, (await execute(api, "lead_qualification", {"lead_id": cold["id"]}))["id"])
    assert (await get_entity(api, "lead", cold["id"]))["status"] == "Disqualified"
    assert {n: s["status"] for n, s in steps_by_name(done).items()}["revenue"] == "skipped"
    assert [c["agent"] for c in llm_server.calls("lead-2")] == ["lead_scorer"]


async def _deploy_triage(api: Api, webhook_server: WebhookServer, healthy: bool) -> tuple[str, dict[str, Any]]:
    service = unique_name("svc")
    raw = (WORKFLOW_PACKS / "deploy_failure_triage.json").read_text()
    name = unique_name("triage")
    definition = json.loads(raw.replace("https://deploy.example.com", f"http://127.0.0.1:{webhook_server.port}"))
    await create(api, {**definition, "name": name})
    webhook_server.respond(f"/status/{service}", {"state": "failed", "reason": "OOMKilled"})
    webhook_server.respond(f"/fix/{service}", {"applied": True}, statuses=[503, 503, 200])
    webhook_server.respond(f"/verify/{service}", {"healthy": healthy})
    done = await finished(api, (await execute(api, name, {"service": service}))["id"])
    return service, done


async def test_pack_deploy_failure_triage(api: Api, webhook_server: WebhookServer) -> None:
    service, done = await _deploy_triage(api, webhook_server, healthy=True)
    assert done["status"] == "completed", done
    steps = steps_by_name(done)
    assert steps["fix"]["retry_count"] == 2 and len(webhook_server.at(f"/fix/{service}")) == 3
    assert json.loads(webhook_server.at(f"/fix/{service}")[0].body) == {
        "action": "scale_up",
        "diagnosis": "the new release exhausts its memory limit",
    }
    assert steps["rollback"]["status"] == "skipped" and not webhook_server.at(f"/rollback/{service}")
    assert steps["notify"]["status"] == "completed"

    service, done = await _deploy_triage(api, webhook_server, healthy=False)
    assert done["status"] == "completed", done
    assert steps_by_name(done)["rollback"]["status"] == "completed"
    assert len(webhook_server.at(f"/rollback/{service}")) == 1
