"""Seed 004's optimizer for a step workflow (issue 26 §4): consecutive steps that read nothing of each
other, with the time a run saves worked out here from fixed recorded durations; the slowest steps; the
most failing steps with their top errors, counted by hand."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.steps.definition import StepWorkflowDefinition
from core.steps.recommendations import StepTimes, independent_runs, recommend
from core.steps.tables import StepExecution, StepRecord
from tests.support.api import Api
from tests.support.steps import create, unique_name, workflow


def make(name: str, **params: Any) -> dict[str, Any]:
    fields = {"note": params.pop("note", "plain")}
    return {
        "name": name,
        "tool": "entity.create",
        "params": {"entity_type": "advice", "name": name, "fields": fields},
        **params,
    }


STEPS = [
    make("fetch_customer"),
    make("fetch_prices"),  # reads nothing of fetch_customer: the two could run together
    make("quote", note="${fetch_customer.id} at ${fetch_prices.id}"),  # reads both: a new run starts
    make("archive", assign="archived"),  # reads nothing of quote
    make("notify", **{"if": "archived.id != ''"}),  # reads archive's variable in its CEL condition
]


def definition(name: str = "advice_flow") -> StepWorkflowDefinition:
    return StepWorkflowDefinition.model_validate(workflow(name, STEPS))


def test_independent_runs_follow_the_references_and_conditions() -> None:
    runs = [[s.name for s in window] for window in independent_runs(definition())]
    assert runs == [["fetch_customer", "fetch_prices"], ["quote", "archive"]]
    # A DAG already runs what it can at once: nothing to recommend.
    dag = StepWorkflowDefinition.model_validate(
        workflow("dag_flow", [make("a"), make("b", dependencies=["a"]), make("c", dependencies=["a"])])
    )
    assert independent_runs(dag) == []


def test_the_figures_are_the_hand_computed_ones() -> None:
    times = {
        "fetch_customer": StepTimes(runs=4, mean_seconds=2.0, p95_seconds=2.5, failed=0, errors=[]),
        "fetch_prices": StepTimes(runs=4, mean_seconds=3.0, p95_seconds=3.9, failed=0, errors=[]),
        "quote": StepTimes(runs=4, mean_seconds=1.0, p95_seconds=1.0, failed=1, errors=[("no price", 1)]),
        "archive": StepTimes(runs=4, mean_seconds=None, p95_seconds=None, failed=4, errors=[("gone", 3), ("x", 1)]),
    }
    found = recommend(definition(), times)
    parallel = [r for r in found if r.kind == "run_in_parallel"]
    assert [r.subjects for r in parallel] == [["fetch_customer", "fetch_prices"], ["quote", "archive"]]
    # 2 s + 3 s one after the other against the longer 3 s at once: 2 s saved per run.
    assert parallel[0].saved_seconds == 2.0 and "2.0 s saved" in parallel[0].title
    assert parallel[1].saved_seconds is None and "archive: no recorded time yet" in parallel[1].detail
    slow = [r for r in found if r.kind == "slowest_step"]
    assert [r.subjects[0] for r in slow] == ["fetch_prices", "fetch_customer", "quote"]
    assert math.isclose(slow[0].figures["share"], round(3 / 6, 4))
    failing = [r for r in found if r.kind == "failing_step"]
    assert [r.subjects[0] for r in failing] == ["archive", "quote"]
    assert failing[0].figures["failure_rate"] == 1.0 and "3 times: gone" in failing[0].detail


async def recorded_run(
    engine: AsyncEngine, name: str, durations: dict[str, float], failed: dict[str, str] | None = None
) -> None:
    """One finished execution of v1 with its top-level steps recorded at the given durations."""
    failed = failed or {}
    execution = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(
            insert(StepExecution).values(
                id=execution,
                workflow_name=name,
                workflow_version=1,
                temporal_workflow_id=f"advice-{execution}",
                status="failed" if failed else "completed",
                started_ts=start,
                finished_ts=start + timedelta(seconds=sum(durations.values())),
            )
        )
        at = start
        for position, (step, seconds) in enumerate(durations.items()):
            await conn.execute(
                insert(StepRecord).values(
                    execution_id=execution,
                    path=step,
                    position=position,
                    name=step,
                    tool="entity.create",
                    status="failed" if step in failed else "completed",
                    error=failed.get(step),
                    started_ts=at,
                    finished_ts=at + timedelta(seconds=seconds),
                )
            )
            at += timedelta(seconds=seconds)


async def recorded_flow(api: Api, engine: AsyncEngine) -> str:
    """A workflow of STEPS with three recorded runs (the last failing at fetch_prices)."""
    name = unique_name("advice")
    await create(api, workflow(name, STEPS))
    await recorded_run(engine, name, {"fetch_customer": 1.0, "fetch_prices": 4.0, "quote": 1.0, "archive": 0.5})
    await recorded_run(engine, name, {"fetch_customer": 3.0, "fetch_prices": 2.0, "quote": 1.0, "archive": 0.5})
    await recorded_run(engine, name, {"fetch_customer": 2.0, "fetch_prices": 3.0}, failed={"fetch_prices": "503 busy"})
    return name


async def test_the_api_recommends_from_recorded_runs(api: Api, engine: AsyncEngine) -> None:
    name = await recorded_flow(api, engine)

    found = await api.request("GET", f"/api/v1/workflows/{name}/recommendations", role="viewer")
    assert found.status_code == 200, found.text
    advice = found.json()
    assert advice["version"] == 1 and advice["basis"].startswith("3 finished executions of v1")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in advice["items"]:
        by_kind.setdefault(item["kind"], []).append(item)
    first = by_kind["run_in_parallel"][0]
    # Means over completed runs: fetch_customer (1 + 3 + 2) / 3 = 2, fetch_prices (4 + 2) / 2 = 3.
    assert first["subjects"] == ["fetch_customer", "fetch_prices"]
    assert math.isclose(first["saved_seconds"], 2.0) and first["figures"]["mean_seconds"]["fetch_prices"] == 3.0
    assert [r["subjects"][0] for r in by_kind["slowest_step"]] == ["fetch_prices", "fetch_customer", "quote"]
    [failing] = by_kind["failing_step"]
    assert failing["subjects"] == ["fetch_prices"] and failing["figures"]["runs"] == 3
    assert failing["figures"]["errors"] == [{"error": "503 busy", "count": 1}]
    missing = await api.request("GET", "/api/v1/workflows/no_such_flow/recommendations", role="viewer")
    assert missing.status_code == 404
