"""Automation part of `make bench`: event-to-first-action latency with 500 active rules against bare
Temporal start-to-first-activity, and events per second against bare workflows per second."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from bench.bare import BareFirstActivityWorkflow, BareStep
from bench.common import pct

RULES = 500
MATCHING_TYPE = "bench_job"


async def create_rules(admin: httpx.AsyncClient) -> str:
    """500 active rules: 490 on other entity types, 9 on the bench type whose condition never holds,
    and 1 whose condition holds and whose first action is an update_field."""
    bodies: list[dict[str, Any]] = []
    for i in range(RULES - 10):
        bodies.append(
            {
                "workflow_name": f"other {i}",
                "trigger_entity_type": f"bench_other_{i % 49}",
                "trigger_action_type": "create",
                "action_entity_type": "x",
                "actions": [{"type": "update_field", "field": "seen", "value": True}],
            }
        )
    for i in range(9):
        bodies.append(
            {
                "workflow_name": f"never {i}",
                "trigger_entity_type": MATCHING_TYPE,
                "trigger_action_type": "create",
                "action_entity_type": MATCHING_TYPE,
                "trigger_conditions": {"expression": f"new.fields.n < -{i + 1}"},
                "actions": [{"type": "update_field", "field": "never", "value": True}],
            }
        )
    limit = asyncio.Semaphore(10)

    async def post(body: dict[str, Any]) -> None:
        async with limit:
            (await admin.post("/api/v1/workflow-automation", json=body)).raise_for_status()

    await asyncio.gather(*(post(b) for b in bodies))
    matching = await admin.post(
        "/api/v1/workflow-automation",
        json={
            "workflow_name": "the matching rule",
            "trigger_entity_type": MATCHING_TYPE,
            "trigger_action_type": "create",
            "action_entity_type": MATCHING_TYPE,
            "trigger_conditions": {"expression": "new.fields.n >= 0"},
            "actions": [{"type": "update_field", "field": "seen", "value": True}],
        },
    )
    matching.raise_for_status()
    return str(matching.json()["id"])


async def trellis_latencies(http: httpx.AsyncClient, engine: AsyncEngine, rule_id: str, count: int) -> list[float]:
    """Event committed (outbox created_ts) → first action applied (its action-log row), in ms."""
    run = uuid.uuid4().hex[:6]
    for i in range(count):
        (
            await http.post(f"/api/v1/entities/{MATCHING_TYPE}", json={"name": f"lat-{run}-{i}", "fields": {"n": i}})
        ).raise_for_status()
        await wait_completed(engine, rule_id, f"lat-{run}-{i}")
    return await latencies(engine, rule_id, f"lat-{run}-%")


async def wait_completed(engine: AsyncEngine, rule_id: str, name_pattern: str, expected: int = 1) -> None:
    query = text(
        "SELECT count(*) FROM app.f_action_log l JOIN app.f_entity_event e ON e.id = l.event_id "
        "WHERE l.rule_id = :rule AND l.action_index = 0 AND e.new_entity->>'name' LIKE :name"
    )
    for _ in range(6000):
        async with engine.connect() as conn:
            done = (await conn.execute(query, {"rule": uuid.UUID(rule_id), "name": name_pattern})).scalar_one()
        if done >= expected:
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"rule runs for {name_pattern} did not finish")


async def latencies(engine: AsyncEngine, rule_id: str, name_pattern: str) -> list[float]:
    query = text(
        "SELECT EXTRACT(EPOCH FROM (l.finished_ts - e.created_ts)) * 1000 FROM app.f_action_log l "
        "JOIN app.f_entity_event e ON e.id = l.event_id "
        "WHERE l.rule_id = :rule AND l.action_index = 0 AND e.new_entity->>'name' LIKE :name"
    )
    async with engine.connect() as conn:
        return [
            float(v) for v in (await conn.execute(query, {"rule": uuid.UUID(rule_id), "name": name_pattern})).scalars()
        ]


async def bare_latencies(client: Client, queue: str, count: int) -> list[float]:
    values: list[float] = []
    for i in range(count):
        began = time.time()
        ran_at = await client.execute_workflow(
            BareFirstActivityWorkflow.run, BareStep(step=i), id=f"bare-first-{uuid.uuid4()}", task_queue=queue
        )
        values.append((ran_at - began) * 1000)
    return values


async def trellis_throughput(http: httpx.AsyncClient, engine: AsyncEngine, rule_id: str, events: int) -> float:
    run = uuid.uuid4().hex[:6]
    limit = asyncio.Semaphore(20)

    async def post(i: int) -> None:
        async with limit:
            (
                await http.post(f"/api/v1/entities/{MATCHING_TYPE}", json={"name": f"tp-{run}-{i}", "fields": {"n": i}})
            ).raise_for_status()

    began = time.perf_counter()
    await asyncio.gather(*(post(i) for i in range(events)))
    await wait_completed(engine, rule_id, f"tp-{run}-%", expected=events)
    return events / (time.perf_counter() - began)


async def bare_throughput(client: Client, queue: str, events: int) -> float:
    limit = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with limit:
            await client.execute_workflow(
                BareFirstActivityWorkflow.run, BareStep(step=i), id=f"bare-tp-{uuid.uuid4()}", task_queue=queue
            )

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(events)))
    return events / (time.perf_counter() - began)


async def measure(
    http: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    engine: AsyncEngine,
    client: Client,
    queue: str,
    samples: int,
    events: int,
) -> dict[str, Any]:
    rule_id = await create_rules(admin)
    await trellis_latencies(http, engine, rule_id, 5)  # warm-up
    await bare_latencies(client, queue, 5)
    bare_ms: list[float] = []
    trellis_ms: list[float] = []
    for _ in range(2):  # alternate halves
        bare_ms += await bare_latencies(client, queue, samples // 2)
        trellis_ms += await trellis_latencies(http, engine, rule_id, samples // 2)
    bare_eps = await bare_throughput(client, queue, events)
    trellis_eps = await trellis_throughput(http, engine, rule_id, events)
    result: dict[str, Any] = {
        "active_rules": RULES,
        "bare": {"p50_ms": pct(bare_ms, 50), "p95_ms": pct(bare_ms, 95), "per_s": bare_eps},
        "trellis": {"p50_ms": pct(trellis_ms, 50), "p95_ms": pct(trellis_ms, 95), "per_s": trellis_eps},
    }
    result["ratio"] = {k: result["trellis"][k] / result["bare"][k] for k in ("p50_ms", "p95_ms", "per_s")}
    return result
