"""A/B variants of a step workflow (issue 26): a start that names no version is routed by weight, by
the entity it is about (one customer keeps its variant), the variant is recorded on the execution and
filters the list; the guardrail stops a worse variant when an experiment run finishes; promoting the
older variant stores it again as the newest and ends the experiment."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.experiments import statistics
from core.steps import store
from core.steps.tables import StepExecution
from tests.support.api import Api
from tests.support.steps import create, execute, finished, unique_name, workflow


def make(name: str) -> dict[str, Any]:
    return {
        "name": "make",
        "tool": "entity.create",
        "params": {"entity_type": "ab_test", "name": f"made by {name}", "fields": {}},
    }


async def two_versions(api: Api) -> str:
    name = unique_name("ab")
    await create(api, workflow(name, [make("first")]))
    changed = await api.request("PUT", f"/api/v1/workflows/{name}", json=workflow(name, [make("second")]))
    assert changed.status_code == 200, changed.text
    return name


async def past_runs(engine: AsyncEngine, name: str, experiment: str, variant: str, version: int, won: int) -> None:
    """20 recorded runs of a variant, ``won`` of them completed, the rest failed, each 30 s long."""
    started = datetime.now(UTC) - timedelta(days=1)
    async with engine.begin() as conn:
        for n in range(20):
            execution = uuid.uuid4()
            await conn.execute(
                insert(StepExecution).values(
                    id=execution,
                    workflow_name=name,
                    workflow_version=version,
                    temporal_workflow_id=f"past-{execution}",
                    status="completed" if n < won else "failed",
                    started_ts=started,
                    finished_ts=started + timedelta(seconds=30),
                    experiment_id=uuid.UUID(experiment),
                    variant=variant,
                )
            )


async def test_step_workflow_variants_route_record_guard_and_promote(api: Api, engine: AsyncEngine) -> None:
    name = await two_versions(api)
    missing = await api.request(
        "POST",
        "/api/v1/experiments",
        json={
            "subject_kind": "steps",
            "subject": name,
            "variants": [{"name": "A", "version": 1, "weight": 1}, {"name": "B", "version": 7, "weight": 1}],
        },
    )
    assert missing.status_code == 422 and "has no version 7" in missing.text
    created = await api.request(
        "POST",
        "/api/v1/experiments",
        json={
            "subject_kind": "steps",
            "subject": name,
            "min_sample": 10,
            "variants": [{"name": "A", "version": 1, "weight": 70}, {"name": "B", "version": 2, "weight": 30}],
        },
    )
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    assert created.json()["subject_kind"] == "steps"

    # 1,000 routings through the starters' own lookup: 70/30 within 4 standard deviations.
    counts = {"A": 0, "B": 0}
    async with engine.connect() as conn:
        for _ in range(1000):
            stored, refused, arm = await store.routed(conn, name, None, str(uuid.uuid4()))
            assert stored is not None and refused is None and arm is not None
            assert stored.version == (1 if arm.name == "A" else 2)
            counts[arm.name] += 1
        # A version asked for by name is not routed.
        stored, _, arm = await store.routed(conn, name, 1, "anything")
        assert arm is None and stored is not None and stored.version == 1
    assert abs(counts["A"] - 700) < 4 * math.sqrt(1000 * 0.7 * 0.3), counts

    # Real executions about one customer keep its variant, recorded on the execution; the list filters.
    customer = str(uuid.uuid4())
    seen = set()
    for _ in range(3):
        started = await execute(api, name, context={"entity_id": customer})
        done = await finished(api, started["id"])
        assert done["status"] == "completed", done
        seen.add((done["variant"], done["workflow_version"]))
    [(variant, version)] = seen
    assert version == (1 if variant == "A" else 2)
    listed = await api.request("GET", f"/api/v1/workflow-executions?workflow={name}&variant={variant}", role="viewer")
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3
    other = "B" if variant == "A" else "A"
    none = await api.request("GET", f"/api/v1/workflow-executions?workflow={name}&variant={other}", role="viewer")
    assert none.json()["items"] == []

    # History: A completed 18 of 20, B 4 of 20. The analysis calls it; the next finish runs the guardrail.
    await past_runs(engine, name, eid, "A", 1, 18)
    await past_runs(engine, name, eid, "B", 2, 4)
    analysis = (await api.request("GET", f"/api/v1/experiments/{eid}", role="viewer")).json()
    [comparison] = analysis["comparisons"]
    a_done = 20 + (3 if variant == "A" else 0)
    b_done = 20 + (3 if variant == "B" else 0)
    a_won = 18 + (3 if variant == "A" else 0)
    b_won = 4 + (3 if variant == "B" else 0)
    expected = statistics.proportions(a_won, a_done, b_won, b_done)
    assert expected is not None and math.isclose(comparison["success_rate"]["p_value"], expected.p_value)
    assert comparison["enough_data"] is True and "significantly lower" in comparison["verdict"]
    by_name = {v["name"]: v for v in analysis["variants"]}
    assert set(by_name[variant]["seconds_per_state"]) == {"make"}  # the real runs' recorded step
    assert by_name[variant]["finished"] == 23 and by_name[other]["started"] == 20

    started = await execute(api, name)
    assert (await finished(api, started["id"]))["status"] == "completed"
    after = (await api.request("GET", f"/api/v1/experiments/{eid}", role="viewer")).json()["experiment"]
    b = next(v for v in after["variants"] if v["name"] == "B")
    assert b["routing"] is False and "one-sided p" in b["stopped_reason"]
    for _ in range(4):
        assert (await execute(api, name))["variant"] == "A"

    # Promote A (version 1, older than the newest): stored again as version 3, the experiment ends.
    promoted = await api.request("POST", f"/api/v1/experiments/{eid}/promote", json={"variant": "A"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["status"] == "ended" and promoted.json()["promoted"] == "A"
    plain = await execute(api, name)
    assert plain["variant"] is None and plain["workflow_version"] == 3
    versions = (await api.request("GET", f"/api/v1/workflows/{name}/versions", role="viewer")).json()
    newest = max(versions, key=lambda v: v["version"])
    assert newest["version"] == 3
