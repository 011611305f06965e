"""Changing step executions while they run: pause (the step under way finishes, no other starts) and
resume; re-run from step 3 with edited input, repeating no effect of steps 1 and 2; the runs linked
to an execution."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity
from core.steps.tables import StepExecution
from tests.support.api import Api, eventually
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, execution, finished, steps_by_name, unique_name, workflow


async def _entities(engine: AsyncEngine, entity_type: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Entity.name).where(Entity.entity_type == entity_type).order_by(Entity.name))
        return list(rows.scalars())


async def test_a_paused_execution_finishes_its_step_and_starts_no_other(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer
) -> None:
    name = unique_name("pause")
    kind = f"paused_{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:8]
    await create(
        api,
        workflow(
            name,
            [
                {"name": "call", "tool": "http.request", "params": {"url": webhook_server.url(f"/hold/{tag}")}},
                {"name": "made", "tool": "entity.create", "params": {"entity_type": kind, "name": "after"}},
            ],
        ),
    )
    started = (await execute(api, name))["id"]
    path = f"/api/v1/workflow-executions/{started}"

    async def calling() -> bool:
        return (await execution(api, started))["live"]["current_step"] == "call"

    await eventually(calling)
    paused = await api.request("POST", f"{path}/pause", role="operator", json={"reason": "the CRM is being fixed"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"]["reason"] == "the CRM is being fixed"
    twice = await api.request("POST", f"{path}/pause", role="operator", json={"reason": "again"})
    assert twice.status_code == 409 and twice.json()["error"] == "already_paused"

    webhook_server.release(tag)  # the step under way finishes …

    async def call_recorded() -> bool:
        return "call" in steps_by_name(await execution(api, started))

    await eventually(call_recorded)
    await asyncio.sleep(1.0)
    now = await execution(api, started)
    assert now["status"] == "running" and "made" not in steps_by_name(now)  # … and no other starts
    assert now["live"]["paused"]["actor"] == "operator-user" and now["paused"]["reason"] == "the CRM is being fixed"
    assert await _entities(engine, kind) == []

    resumed = await api.request("POST", f"{path}/resume", role="operator", json={})
    assert resumed.status_code == 200 and resumed.json()["paused"] is None
    done = await finished(api, started)
    assert done["status"] == "completed" and done["paused"] is None
    assert await _entities(engine, kind) == ["after"]
    ended = await api.request("POST", f"{path}/pause", role="operator", json={"reason": "late"})
    assert ended.status_code == 409 and ended.json()["error"] == "execution_finished"


async def test_a_rerun_from_step_three_with_edited_input_repeats_no_earlier_effect(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer
) -> None:
    name = unique_name("rerun")
    kind = f"rerun_{uuid.uuid4().hex[:6]}"
    hook = f"/ok/{uuid.uuid4().hex[:8]}"
    await create(
        api,
        workflow(
            name,
            [
                {"name": "notify", "tool": "http.request", "params": {"url": webhook_server.url(hook)}},
                {"name": "account", "tool": "entity.create", "params": {"entity_type": kind, "name": "account"}},
                {"name": "order", "tool": "entity.create", "params": {"entity_type": kind, "name": "${input.item}"}},
                {"name": "invoice", "tool": "entity.create", "params": {"entity_type": kind, "name": "invoice"}},
            ],
        ),
    )
    first = await finished(api, (await execute(api, name, {"item": "blue widget"}))["id"])
    assert first["status"] == "completed", first["error"]
    assert sum(1 for h in webhook_server.hits if h.path == hook) == 1

    rerun = await api.request(
        "POST",
        f"/api/v1/workflow-executions/{first['id']}/rerun",
        role="operator",
        json={"from_step": "order", "input": {"item": "red widget"}},
    )
    assert rerun.status_code == 202, rerun.text
    second = await finished(api, rerun.json()["id"])
    assert second["status"] == "completed", second["error"]
    assert second["input"] == {"item": "red widget"}
    assert second["trigger"]["execution_id"] == first["id"] and second["trigger"]["edited"] == ["input"]
    # Steps 1 and 2 were reused from the records: the webhook was called once, the account made once.
    assert sum(1 for h in webhook_server.hits if h.path == hook) == 1
    assert sorted(await _entities(engine, kind)) == sorted(
        ["account", "blue widget", "invoice", "red widget", "invoice"]
    )
    steps = steps_by_name(second)
    assert steps["account"]["output"] == steps_by_name(first)["account"]["output"]
    assert steps["order"]["output"]["name"] == "red widget"

    linked = await api.request("GET", f"/api/v1/workflow-executions/{first['id']}/runs", role="viewer")
    assert [r["id"] for r in linked.json()["items"]] == [second["id"]]
    bad = await api.request(
        "POST",
        f"/api/v1/workflow-executions/{first['id']}/rerun",
        role="operator",
        json={"from_step": "order", "input": []},
    )
    assert bad.status_code == 422
    async with engine.connect() as conn:
        runs = await conn.execute(
            select(func.count()).where(StepExecution.trigger["execution_id"].astext == first["id"])
        )
        assert runs.scalar_one() == 1
