"""What the third outside attack run found in step workflows, each now refused at save or bounded at run
time: a secret named by an execution's input, a form whose regular expression could stall the worker or
whose ``$ref`` reached the network, outputs past Temporal's payload limit, disabled workflows still
started, unbounded ``workflow.run`` fan-out, costly validation, sub-second schedules, and operators
acting on each other's executions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import insert

from core.steps.definition import StepWorkflowDefinition
from core.steps.tables import StepWorkflow
from tests.support.api import Api, eventually, make_settings, open_api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, run, unique_name, workflow


async def _save(api: Api, prefix: str, steps: list[dict[str, Any]]) -> Any:
    """POST a new definition of these steps (its name from ``prefix``); the answer as it comes."""
    return await api.request("POST", "/api/v1/workflows", json=workflow(unique_name(prefix), steps))


# --------------------------------------------------------------------------- 1. secrets named by data


async def test_a_header_value_from_input_never_names_a_secret(api: Api, webhook_server: WebhookServer) -> None:
    tag = unique_name("secretdata")
    done = await run(
        api,
        [
            {
                "name": "call",
                "tool": "http.request",
                "params": {
                    "url": webhook_server.url(f"/ok/{tag}"),
                    "method": "POST",
                    "headers": {"x-from-input": "${input.token}", "x-authored": "secret:crm_token"},
                    "body": {"echo": "${input.token}"},
                },
            }
        ],
        {"token": "secret:crm_token"},
    )
    assert done["status"] == "completed", done
    [hit] = webhook_server.at(f"/ok/{tag}")
    # The input's value is sent as the text it is; only what the definition wrote names the secret.
    assert hit.headers["x-from-input"] == "secret:crm_token"
    assert hit.headers["x-authored"] == "Bearer s3cr3t-from-settings"
    assert b"s3cr3t" not in hit.body


async def test_sign_must_be_written_in_the_definition(api: Api, webhook_server: WebhookServer) -> None:
    url = webhook_server.url("/ok/x")
    response = await _save(
        api, "signref", [{"name": "call", "tool": "http.request", "params": {"url": url, "sign": "${input.s}"}}]
    )
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["problems"]] == ["steps[0].params.sign"]
    headers = {"x": "secret:${input.s}"}
    response = await _save(
        api, "secretref", [{"name": "call", "tool": "http.request", "params": {"url": url, "headers": headers}}]
    )
    assert response.status_code == 422, response.text
    assert "secret reference" in response.text


# --------------------------------------------------------------------------- 2. forms are bounded schemas


def _task_workflow(name: str, form: dict[str, Any]) -> dict[str, Any]:
    return workflow(
        name, [{"name": "review", "human_task": {"assignee": "approver", "title": f"Review {name}", "form": form}}]
    )


async def test_a_form_with_a_regular_expression_or_a_remote_ref_is_refused_at_save(api: Api) -> None:
    hostile = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a|a)+$"}}}
    remote = {"type": "object", "properties": {"x": {"$ref": "https://example.com/schema.json"}}}
    nested: dict[str, Any] = {"type": "object"}
    for _ in range(11):  # 22 levels: over the schema bound (20), under the body bound (32)
        nested = {"type": "object", "properties": {"n": nested}}
    for form, words in ((hostile, "regular expressions"), (remote, "inside the schema"), (nested, "levels deep")):
        response = await api.request("POST", "/api/v1/workflows", json=_task_workflow(unique_name("form"), form))
        assert response.status_code == 422, response.text
        [problem] = response.json()["problems"]
        assert problem["field"] == "steps[0].human_task.form" and words in problem["message"], problem


async def test_a_stored_form_with_a_pattern_is_never_run_and_the_worker_stays_responsive(api: Api, engine: Any) -> None:
    """A definition saved before the bound (written straight to the table here) is refused when a decision
    comes, with a message saying what to do, instead of running a backtracking expression in the worker."""
    name = unique_name("legacyform")
    wire = StepWorkflowDefinition.model_validate(_task_workflow(name, {"type": "object"})).wire()
    wire["steps"][0]["human_task"]["form"] = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a|a)+$"}},
    }
    async with engine.begin() as conn:
        await conn.execute(
            insert(StepWorkflow).values(
                name=name, version=1, description="legacy", definition=wire, enabled=True, created_by="admin-user"
            )
        )
    started = await execute(api, name)

    async def item() -> dict[str, Any] | None:
        listed = (await api.request("GET", "/api/v1/inbox", role="approver", params={"kind": "task"})).json()
        return next((i for i in listed if i["title"] == f"Review {name}"), None)

    task = await eventually(item)
    refused = await api.request(
        "POST",
        f"/api/v1/inbox/{task['id']}/decision",
        role="approver",
        json={"action": "approve", "fields": {"code": "a" * 40 + "!"}},
    )
    assert refused.status_code == 422, refused.text
    assert "regular expressions" in refused.json()["detail"] and "admin must correct" in refused.json()["detail"]
    # The worker is free: an unrelated run completes, and the task can still be rejected.
    other = await run(
        api, [{"name": "n", "tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}]
    )
    assert other["status"] == "completed", other
    rejected = await api.request(
        "POST", f"/api/v1/inbox/{task['id']}/decision", role="approver", json={"action": "reject"}
    )
    assert rejected.status_code == 200, rejected.text
    assert (await finished(api, started["id"]))["status"] == "completed"


# --------------------------------------------------------------------------- 3. outputs within Temporal's limits


async def test_a_step_output_past_its_cap_fails_the_step_before_it_is_recorded(api: Api, temporal_client: Any) -> None:
    done = await run(api, [{"name": "big", "tool": "testmcp.repeat", "params": {"text": "x", "times": 300_000}}])
    assert done["status"] == "failed", done
    assert "(testmcp.repeat) is " in done["error"] and "at most 262144 bytes" in done["error"], done["error"]
    [big] = done["steps"]
    assert big["status"] == "failed" and big["output"] is None
    # Temporal agrees: the run is closed, not retrying a workflow task it cannot complete.
    handle = temporal_client.get_workflow_handle(f"step-execution-{done['id']}")
    description = await handle.describe()
    assert description.status is not None and description.status.name == "COMPLETED"


async def test_a_run_whose_outputs_together_pass_the_cap_fails_naming_the_step(api: Api, temporal_client: Any) -> None:
    # Each output holds the text twice (result, and the text item in content): about 240 KB a step.
    steps = [
        {"name": f"part{n}", "tool": "testmcp.repeat", "params": {"text": "y", "times": 120_000}} for n in range(5)
    ]
    done = await run(api, steps)
    assert done["status"] == "failed", done
    assert "step 'part4'" in done["error"] and "a run may carry at most 1048576" in done["error"], done["error"]
    assert sorted(done["output"]) == ["part0", "part1", "part2", "part3"]
    handle = temporal_client.get_workflow_handle(f"step-execution-{done['id']}")
    description = await handle.describe()
    assert description.status is not None and description.status.name == "COMPLETED"


# --------------------------------------------------------------------------- 4. disabled means no new runs


async def test_a_disabled_workflow_starts_no_run_of_any_version_by_any_path(api: Api) -> None:
    name = unique_name("off")
    note = {"name": "n", "tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}
    await create(api, workflow(name, [note]))
    earlier = await finished(api, (await execute(api, name))["id"])
    assert earlier["status"] == "completed"
    disabled = {**workflow(name, [note]), "enabled": False}
    assert (await api.request("PUT", f"/api/v1/workflows/{name}", json=disabled)).status_code == 200

    pinned = await api.request("POST", f"/api/v1/workflows/{name}/execute", role="operator", json={"version": 1})
    assert pinned.status_code == 409 and pinned.json()["error"] == "workflow_disabled", pinned.text
    parent = await run(api, [{"name": "sub", "tool": "workflow.run", "params": {"workflow": name}}])
    assert parent["status"] == "failed" and "is disabled" in parent["error"], parent
    kind = unique_type("offrule")
    rule = await create_rule(api, kind, [{"type": "start_workflow", "workflow": name}])
    await create_entity(api, kind, "Starts nothing")
    [execution] = await finished_executions(api, rule["id"], 1)
    assert execution["status"] == "failed" and "is disabled" in execution["reason"], execution


async def test_retrying_an_execution_of_a_disabled_workflow_is_refused(api: Api) -> None:
    name = unique_name("offretry")
    await create(api, workflow(name, [{"name": "boom", "tool": "testmcp.fail", "params": {"reason": "no"}}]))
    done = await finished(api, (await execute(api, name))["id"])
    assert done["status"] == "failed"
    disabled = {
        **workflow(name, [{"name": "boom", "tool": "testmcp.fail", "params": {"reason": "no"}}]),
        "enabled": False,
    }
    assert (await api.request("PUT", f"/api/v1/workflows/{name}", json=disabled)).status_code == 200
    retried = await api.request(
        "POST", f"/api/v1/workflow-executions/{done['id']}/retry", role="operator", json={"from_step": "boom"}
    )
    assert retried.status_code == 409 and retried.json()["error"] == "workflow_disabled", retried.text


# --------------------------------------------------------------------------- 8. fan-out bounded


async def test_a_definition_that_runs_itself_or_fans_out_too_wide_is_refused_at_save(api: Api) -> None:
    name = unique_name("selfrun")
    response = await api.request(
        "POST",
        "/api/v1/workflows",
        json=workflow(name, [{"name": "again", "tool": "workflow.run", "params": {"workflow": name}}]),
    )
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["problems"]] == ["steps[0].params.workflow"]
    note = {"tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}
    wide = {
        "name": "outer",
        "foreach": {
            "items": "${input.items}",
            "concurrency": 50,
            "steps": [
                {
                    "name": "inner",
                    "parallel": {
                        "branches": [{"name": f"b{n}", "steps": [{"name": f"leaf{n}", **note}]} for n in range(5)]
                    },
                }
            ],
        },
    }
    response = await _save(api, "wide", [wide])
    assert response.status_code == 422, response.text
    assert "250 steps" in response.text and "at most 200" in response.text


async def test_executions_one_run_spawns_through_workflow_run_are_bounded_in_total(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> None:
    """Two workflows that run each other (neither runs itself) fan out 2 children per level: only depth
    bounded them before (63 executions from one run). With TRELLIS_STEPS_MAX_SPAWNED the whole tree stops
    at the budget, and the run fails saying so."""
    settings = make_settings(postgres_url, temporal_address, task_queue, steps_max_spawned=6, steps_max_depth=10)
    lifespan, client = await open_api(settings)
    try:
        api = Api(client)
        ping, pong = unique_name("ping"), unique_name("pong")

        def calling(other: str) -> list[dict[str, Any]]:
            return [
                {"name": "left", "tool": "workflow.run", "params": {"workflow": other}},
                {"name": "right", "tool": "workflow.run", "params": {"workflow": other}, "dependencies": []},
            ]

        note = [{"name": "n", "tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}]
        await create(api, workflow(ping, note))
        await create(api, workflow(pong, calling(ping)))
        assert (
            await api.request("PUT", f"/api/v1/workflows/{ping}", json=workflow(ping, calling(pong)))
        ).status_code == 200
        started = await execute(api, ping)
        done = await finished(api, started["id"])
        assert done["status"] == "failed", done
        assert "TRELLIS_STEPS_MAX_SPAWNED" in json.dumps(done), done
        listed = await api.request("GET", "/api/v1/workflow-executions", params={"limit": 200})
        names = {ping, pong}
        spawned = [e for e in listed.json()["items"] if e["workflow_name"] in names and e["id"] != started["id"]]
        assert len(spawned) <= 6, len(spawned)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


# --------------------------------------------------------------------------- 9. validation keeps the API serving


async def test_validating_costly_conditions_keeps_the_api_answering_and_stops_at_a_budget(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> None:
    # The production body cap (256 KiB), not the suite's smaller one: 150 conditions of ~1,800 characters.
    settings = make_settings(postgres_url, temporal_address, task_queue, max_body_bytes=512 * 1024)
    lifespan, client = await open_api(settings)
    try:
        await _costly_validation(Api(client))
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def _costly_validation(api: Api) -> None:
    def costly(n: int) -> str:  # under 2,000 characters, tens of ms to compile; each one different
        return f"[{n}," + ",".join(["1"] * 890) + "].size() > 0"

    note = {"tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}
    steps = [{"name": f"s{n}", "if": costly(n), **note} for n in range(150)]
    saving = asyncio.create_task(api.request("POST", "/api/v1/workflows", json=workflow(unique_name("costly"), steps)))
    answered = 0
    while not saving.done():
        assert (await api.request("GET", "/livez", role=None)).status_code == 200
        answered += 1
        await asyncio.sleep(0.05)
    response = await saving
    # The loop kept serving while the definition was checked (before, nothing answered until it was done) ...
    assert answered >= 3, answered
    # ... and the check stopped at its budget with a problem that says so.
    assert response.status_code == 422, response.text
    assert "longer than 3s to compile" in response.text, response.text


# --------------------------------------------------------------------------- 10. a schedule's floor


async def test_a_schedule_repeats_at_most_once_a_second(api: Api) -> None:
    note = {"tool": "notify.send", "params": {"recipients": ["x"], "subject": "s", "body": "b"}}
    response = await _save(api, "tick", [{"name": "tick", **note, "schedule": {"everyMs": 1, "maxRuns": 5}}])
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["problems"]] == ["steps[0].schedule.everyMs"]
