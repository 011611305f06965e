"""Step workflows, part two (seed 004) on the real servers: parallel branches that overlap and join,
conditions both ways, foreach in order, a DAG of dependencies, a scheduled step, and the onError
strategies retry, skip and compensate (a saga unwinding in reverse order, each compensation once), and
a retry from a step reusing the outputs before it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity
from core.steps import store as steps_store
from core.steps.contracts import BeginInput
from core.steps.tables import StepExecution, StepRecord
from tests.support.api import Api
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, run, steps_by_name, unique_name, workflow


def make(name: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "tool": "entity.create", "params": {"entity_type": "flow_test", "name": label}, **extra}


def call(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "tool": "http.request", "params": {"url": url}, **extra}


async def test_parallel_branches_overlap_and_the_join_sees_both(api: Api, webhook_server: WebhookServer) -> None:
    tag = uuid.uuid4().hex[:8]
    done = await run(
        api,
        [
            {
                "name": "build",
                "parallel": {
                    "branches": [
                        {
                            "name": "frontend",
                            "steps": [
                                call("design_ui", webhook_server.url(f"/slow/{tag}-ui")),
                                make("implement_frontend", "frontend ${design_ui.status}"),
                            ],
                        },
                        {
                            "name": "backend",
                            "steps": [
                                call("design_api", webhook_server.url(f"/slow/{tag}-api")),
                                make("implement_backend", "backend ${design_api.status}"),
                            ],
                        },
                    ]
                },
            },
            make("integrate", "${implement_frontend.name} + ${build.backend.implement_backend.name}"),
        ],
    )
    assert done["status"] == "completed", done["error"]
    ui, api_hit = webhook_server.at(f"/slow/{tag}-ui")[0], webhook_server.at(f"/slow/{tag}-api")[0]
    # each answer takes 0.3 s: the second call arrived while the first was still being served
    assert abs(ui.ts - api_hit.ts) < 0.3
    records = steps_by_name(done)
    first_ui, first_api = records["design_ui"], records["design_api"]
    assert first_ui["started_ts"] < first_api["finished_ts"] and first_api["started_ts"] < first_ui["finished_ts"]
    assert done["output"]["integrate"]["name"] == "frontend 200 + backend 200"
    joined = done["output"]["build"]
    assert set(joined) == {"frontend", "backend"}
    assert joined["frontend"]["implement_frontend"]["name"] == "frontend 200"
    assert joined["backend"]["design_api"]["status"] == 200


@pytest.mark.parametrize(("urgent", "taken"), [(True, "then"), (False, "else")])
async def test_a_branch_takes_one_arm_by_its_condition(api: Api, urgent: bool, taken: str) -> None:
    done = await run(
        api,
        [
            {
                "name": "route",
                "branch": {
                    "condition": "input.urgent && input.amount > 100",
                    "then": [make("escalated", "urgent ${input.amount}")],
                    "else": [make("queued", "normal ${input.amount}")],
                },
            },
            make("after", "after", **{"if": "${escalated}"}),
        ],
        {"urgent": urgent, "amount": 250},
    )
    assert done["status"] == "completed", done["error"]
    records = steps_by_name(done)
    assert records["route"]["output"]["taken"] == taken
    ran, not_ran = ("escalated", "queued") if urgent else ("queued", "escalated")
    assert ran in records and not_ran not in records
    assert records["after"]["status"] == ("completed" if urgent else "skipped")


async def test_foreach_keeps_the_items_order_at_any_concurrency(api: Api) -> None:
    items = [{"sku": f"S-{n}", "qty": n} for n in range(6)]
    done = await run(
        api,
        [
            {
                "name": "lines",
                "foreach": {
                    "items": "${input.items}",
                    "as": "line",
                    "concurrency": 3,
                    "steps": [
                        {
                            "name": "made",
                            "tool": "entity.create",
                            "params": {
                                "entity_type": "flow_test",
                                "name": "${line.sku}",
                                "fields": {"qty": "${line.qty}", "at": "${line_index}"},
                            },
                        },
                        make("noted", "${made.name} noted"),
                    ],
                },
            }
        ],
        {"items": items},
    )
    assert done["status"] == "completed", done["error"]
    results = done["output"]["lines"]
    assert [r["made"]["name"] for r in results] == [i["sku"] for i in items]
    assert [r["made"]["fields"] for r in results] == [{"qty": n, "at": n} for n in range(6)]
    assert [r["noted"]["name"] for r in results] == [f"S-{n} noted" for n in range(6)]
    paths = {s["path"] for s in done["steps"]}
    assert {f"lines[{n}].made" for n in range(6)} | {f"lines[{n}].noted" for n in range(6)} <= paths


async def test_dependencies_run_a_dag(api: Api, webhook_server: WebhookServer) -> None:
    tag = uuid.uuid4().hex[:8]
    done = await run(
        api,
        [
            make("validate", "validated", dependencies=[]),
            call("left", webhook_server.url(f"/slow/{tag}-left"), dependencies=["validate"]),
            call("right", webhook_server.url(f"/slow/{tag}-right"), dependencies=["validate"]),
            make("merge", "${left.status} ${right.status} ${validate.name}", dependencies=["left", "right"]),
        ],
    )
    assert done["status"] == "completed", done["error"]
    records = steps_by_name(done)
    assert records["merge"]["output"]["name"] == "200 200 validated"
    assert records["validate"]["finished_ts"] <= min(records["left"]["started_ts"], records["right"]["started_ts"])
    assert max(records["left"]["finished_ts"], records["right"]["finished_ts"]) <= records["merge"]["started_ts"]
    left, right = webhook_server.at(f"/slow/{tag}-left")[0], webhook_server.at(f"/slow/{tag}-right")[0]
    assert abs(left.ts - right.ts) < 0.3  # left and right ran side by side


async def test_a_scheduled_step_repeats_until_its_condition(api: Api, webhook_server: WebhookServer) -> None:
    path = f"/status/{uuid.uuid4().hex[:8]}"
    webhook_server.respond(path, {"state": "syncing"}, [202, 202, 200])
    done = await run(
        api,
        [call("sync_status", webhook_server.url(path), schedule={"everyMs": 1000, "until": "last.status == 200"})],
    )
    assert done["status"] == "completed", done["error"]
    assert done["output"]["sync_status"]["runs"] == 3
    assert done["output"]["sync_status"]["last"]["status"] == 200
    assert len(webhook_server.at(path)) == 3
    assert {"sync_status@1", "sync_status@2", "sync_status@3", "sync_status"} <= {s["path"] for s in done["steps"]}

    capped = await run(api, [make("tick", "tick", schedule={"everyMs": 1000, "maxRuns": 2})])
    assert capped["output"]["tick"]["runs"] == 2


async def test_on_error_retry_and_skip(api: Api, webhook_server: WebhookServer) -> None:
    tag = uuid.uuid4().hex[:8]
    retried = await run(
        api,
        [
            call(
                "validate",
                webhook_server.url(f"/flaky/{tag}"),
                onError={
                    "strategy": "retry",
                    "maxRetries": 3,
                    "backoffStrategy": "exponential",
                    "initialIntervalMs": 20,
                },
            )
        ],
    )
    assert retried["status"] == "completed", retried["error"]
    assert steps_by_name(retried)["validate"]["retry_count"] == 2
    assert len(webhook_server.at(f"/flaky/{tag}")) == 3

    skipped = await run(
        api,
        [
            call("optional", webhook_server.url(f"/gone/{tag}"), onError={"strategy": "skip"}),
            make("next", "went on"),
        ],
    )
    assert skipped["status"] == "completed", skipped["error"]
    assert steps_by_name(skipped)["optional"]["status"] == "failed"
    assert [e["step"] for e in skipped["step_errors"]] == ["optional"]
    assert steps_by_name(skipped)["next"]["status"] == "completed"


async def test_a_saga_compensates_completed_steps_in_reverse_order_once(
    api: Api, webhook_server: WebhookServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = unique_name("saga")
    undo = {"strategy": "compensate"}
    definition = workflow(
        name,
        [
            make("reserve", f"reserve {tag}", onError={**undo, "compensationStep": "release"}),
            make("charge", f"charge {tag}", onError={**undo, "compensationStep": "refund"}),
            call("ship", webhook_server.url(f"/gone/{tag}"), onError={**undo, "compensationStep": "recall"}),
        ],
    )
    definition["compensations"] = [
        {"name": "release", "tool": "entity.update", "params": {"id": "${reserve.id}", "status": "released"}},
        {"name": "refund", "tool": "entity.update", "params": {"id": "${charge.id}", "status": "refunded"}},
        {"name": "recall", "tool": "http.request", "params": {"url": webhook_server.url(f"/ok/{tag}-recall")}},
    ]
    await create(api, definition)
    done = await finished(api, (await execute(api, name))["id"])
    assert done["status"] == "compensated", done
    assert "step 'ship' (http.request) failed" in done["error"]
    records = steps_by_name(done)
    compensations = sorted(
        (s for s in done["steps"] if s["path"].startswith("compensate.")), key=lambda s: s["finished_ts"]
    )
    assert [s["path"] for s in compensations] == ["compensate.charge", "compensate.reserve"]
    assert [s["output"]["status"] for s in compensations] == ["refunded", "released"]
    assert records["ship"]["status"] == "failed"
    assert webhook_server.at(f"/ok/{tag}-recall") == []  # the failed step itself is not compensated


async def test_control_flow_definitions_are_validated(api: Api) -> None:
    cases: list[tuple[list[dict[str, Any]], str, str]] = [
        (
            [make("a", "a", dependencies=["b"]), make("b", "b", dependencies=["a"])],
            "steps",
            "cycle among: a, b",
        ),
        ([make("a", "a", dependencies=["nosuch"])], "steps[0].dependencies[0]", "not a step of this list"),
        (
            [
                {
                    "name": "p",
                    "parallel": {
                        "branches": [
                            {"name": "x", "steps": [make("one", "1")]},
                            {"name": "y", "steps": [make("two", "${one.name}")]},
                        ]
                    },
                }
            ],
            "steps[0].parallel.branches[1].steps[0].params.name",
            "'one'",
        ),
        (
            [{"name": "each", "foreach": {"items": "not a reference", "steps": [make("x", "x")]}}],
            "steps[0].foreach.items",
            "one reference to a list",
        ),
        (
            [{"name": "b", "branch": {"condition": "input.x >", "then": [make("x", "x")]}}],
            "steps[0].branch.condition",
            "parse",
        ),
        ([make("a", "a", onError={"strategy": "compensate"})], "steps[0].onError.compensationStep", "needs"),
        (
            [make("a", "a", onError={"strategy": "retry", "compensationStep": "nosuch"})],
            "steps[0].onError.compensationStep",
            "not in the definition's compensations",
        ),
        (
            [make("a", "a"), {"name": "a", "branch": {"condition": "true", "then": [make("z", "z")]}}],
            "steps[1].name",
            "earlier",
        ),
    ]
    for steps, path, message in cases:
        response = await api.request("POST", "/api/v1/workflows", json=workflow(unique_name("bad"), steps))
        assert response.status_code == 422, (path, response.text)
        problems = {p["field"]: p["message"] for p in response.json()["problems"]}
        assert path in problems and message in problems[path], (path, problems)


async def test_retry_from_a_step_reuses_the_outputs_before_it(
    api: Api, webhook_server: WebhookServer, engine: AsyncEngine
) -> None:
    kind = unique_name("retried")
    path = f"/sync/{uuid.uuid4().hex[:8]}"
    webhook_server.respond(path, {"synced": True}, [500, 200])
    name = unique_name("retry")
    await create(
        api,
        workflow(
            name,
            [
                {"name": "made", "tool": "entity.create", "params": {"entity_type": kind, "name": "${input.label}"}},
                call("sync", webhook_server.url(path)),
                {"name": "done", "tool": "entity.update", "params": {"id": "${made.id}", "status": "synced"}},
            ],
        ),
    )
    failed = await finished(api, (await execute(api, name, {"label": "once"}))["id"])
    assert failed["status"] == "failed" and "sync" in failed["error"]

    completed_retry = await api.request(
        "POST", f"/api/v1/workflow-executions/{failed['id']}/retry", role="operator", json={"from_step": "nosuch"}
    )
    assert completed_retry.status_code == 422 and "made, sync, done" in completed_retry.json()["detail"]
    retried = await api.request(
        "POST", f"/api/v1/workflow-executions/{failed['id']}/retry", role="operator", json={"from_step": "sync"}
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["trigger"] == {
        "kind": "retry",
        "execution_id": failed["id"],
        "from_step": "sync",
        "actor": "operator-user",
    }
    done = await finished(api, retried.json()["id"])
    assert done["status"] == "completed", done["error"]
    assert done["output"]["made"] == failed["output"]["made"]  # reused, not created again
    assert done["output"]["done"]["status"] == "synced"
    assert [s["name"] for s in done["steps"]] == ["made", "sync", "done"]
    async with engine.connect() as conn:
        made = (
            await conn.execute(select(func.count()).select_from(Entity).where(Entity.entity_type == kind))
        ).scalar_one()
    assert made == 1
    # Every starter starts the workflow, then records (core/steps/store.accept). Had the API died
    # between the two, the run's own begin copies the reused records: remove them, begin again.
    retry_id = uuid.UUID(done["id"])
    async with engine.begin() as conn:
        await conn.execute(delete(StepRecord).where(StepRecord.execution_id == retry_id, StepRecord.path == "made"))
        await steps_store.begin(
            conn,
            BeginInput(
                execution_id=done["id"],
                workflow=name,
                version=1,
                temporal_workflow_id=f"step-execution-{done['id']}",
                input={},
                context={},
                trigger={},
                reused_from=failed["id"],
                reused_paths=["made"],
            ),
        )
        copied = (
            await conn.execute(
                select(StepRecord.output).where(StepRecord.execution_id == retry_id, StepRecord.path == "made")
            )
        ).scalar_one()
    assert copied == failed["output"]["made"]
    # A completed execution may be re-run from a step too (issue 24: any final state).
    again = await api.request(
        "POST", f"/api/v1/workflow-executions/{done['id']}/retry", role="operator", json={"from_step": "sync"}
    )
    assert again.status_code == 202, again.text
    assert (await finished(api, again.json()["id"]))["status"] == "completed"


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def test_metrics_match_an_independent_count(api: Api, webhook_server: WebhookServer, engine: AsyncEngine) -> None:
    name = unique_name("measured")
    tag = uuid.uuid4().hex[:8]
    await create(
        api,
        workflow(
            name,
            [
                make("record", "measured"),
                call("check", webhook_server.url(f"/${{input.kind}}/{tag}")),
            ],
        ),
    )
    for kind in ("ok", "ok", "slow", "gone"):
        await finished(api, (await execute(api, name, {"kind": kind}))["id"])
    response = await api.request("GET", f"/api/v1/workflows/{name}/metrics", role="viewer", params={"period": "day"})
    assert response.status_code == 200, response.text
    figures = response.json()

    async with engine.connect() as conn:
        executions = (
            await conn.execute(
                select(StepExecution.status, StepExecution.started_ts, StepExecution.finished_ts).where(
                    StepExecution.workflow_name == name
                )
            )
        ).all()
        steps = (
            await conn.execute(
                select(StepRecord.name, StepRecord.started_ts, StepRecord.finished_ts)
                .join(StepExecution, StepExecution.id == StepRecord.execution_id)
                .where(StepExecution.workflow_name == name, StepRecord.status.in_(("completed", "failed")))
            )
        ).all()
    assert figures["totalExecutions"] == len(executions) == 4
    completed = [e for e in executions if e.status == "completed"]
    assert figures["successRate"] == round(100 * len(completed) / 4, 2) == 75.0
    assert figures["errorRate"] == 25.0
    durations = [(e.finished_ts - e.started_ts).total_seconds() * 1000 for e in executions]
    assert figures["averageExecutionTime"] == pytest.approx(sum(durations) / 4, abs=0.051)
    by_step: dict[str, list[float]] = {}
    for row in steps:
        by_step.setdefault(row.name, []).append((row.finished_ts - row.started_ts).total_seconds() * 1000)
    expected = sorted(((n, percentile_cont(d, 0.95), len(d)) for n, d in by_step.items()), key=lambda x: -x[1])
    got = figures["bottlenecks"]
    assert [(b["step"], b["runs"]) for b in got] == [(n, runs) for n, _, runs in expected]
    assert [b["p95DurationMs"] for b in got] == pytest.approx([p95 for _, p95, _ in expected], abs=0.051)
    assert figures["bottlenecks"][0]["step"] == "check"  # the slow answer makes it the bottleneck
    assert sum(t["totalExecutions"] for t in figures["trends"]) == 4
    missing = await api.request("GET", "/api/v1/workflows/nosuch_workflow/metrics", role="viewer")
    assert missing.status_code == 404
