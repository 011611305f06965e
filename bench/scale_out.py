"""Scale-out part of `make bench`: 2 worker processes and 2 API processes on one Temporal server and one
database (its own, so only these workers' dispatchers see its outbox), driven through both APIs.

Each instance runs HS_STD's longest success path, and its root entity's creation fires one rule, so
both the transitions and the outbox dispatchers are shared between the two workers. Afterwards the
database is checked for duplicate effects: every instance wrote exactly the events and entities one
instance writes, and the rule ran exactly once per event, with one action-log row each.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import free_port, wait_healthy
from core.platform.database import make_engine
from core.platform.embedded import api_command

ROOT = Path(__file__).resolve().parent.parent
PATH = [1, 2, 3, 4, 6, 7, 8, 9]
RULE_TYPE = "cust"  # HS_STD's root entity type: its create event fires the rule


async def _create_database(admin_engine: AsyncEngine, base_url: str) -> str:
    name = f"scale_{uuid.uuid4().hex[:8]}"
    async with admin_engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(f"CREATE DATABASE {name}"))
    return base_url.replace("@/postgres?", f"@/{name}?")


async def _instance(http: httpx.AsyncClient) -> str:
    response = await http.post(
        "/api/v1/workflow-instance", json={"template_code": "HS_STD", "entity": {"name": f"Scale {uuid.uuid4()}"}}
    )
    response.raise_for_status()
    instance_id = str(response.json()["instance_id"])
    for state in PATH:
        (
            await http.put(f"/api/v1/workflow-instance/{instance_id}/transition", json={"to_state_id": state})
        ).raise_for_status()
    return instance_id


async def _counts(engine: AsyncEngine, rule_id: str) -> dict[str, Any]:
    queries = {
        "instances_completed": "SELECT count(*) FROM app.d_industry_workflow_graph_data "
        "WHERE workflow_status = 'completed'",
        "instance_events": "SELECT count(*) FROM app.f_industry_workflow_events",
        "duplicate_instance_events": "SELECT count(*) FROM (SELECT workflow_data_id, seq, event_type FROM "
        "app.f_industry_workflow_events GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
        "entities": "SELECT count(*) FROM app.d_entity",
        "customer_creates": f"SELECT count(*) FROM app.f_entity_event WHERE entity_type = '{RULE_TYPE}' "
        "AND event_kind = 'create'",
        "rule_runs": "SELECT count(*) FROM app.f_rule_execution WHERE rule_id = :rule AND status = 'completed'",
        "action_log_rows": "SELECT count(*) FROM app.f_action_log WHERE rule_id = :rule",
        "undispatched": "SELECT count(*) FROM app.f_entity_event WHERE dispatched_ts IS NULL",
    }
    async with engine.connect() as conn:
        return {
            name: int(
                (await conn.execute(text(sql), {"rule": uuid.UUID(rule_id)} if ":rule" in sql else {})).scalar_one()
            )
            for name, sql in queries.items()
        }


async def measure(
    admin_engine: AsyncEngine, base_url: str, address: str, tokens: tuple[str, str], instances: int, concurrency: int
) -> dict[str, Any]:
    operator_token, admin_token = tokens
    database_url = await _create_database(admin_engine, base_url)
    env = {
        **os.environ,
        "TRELLIS_DATABASE_URL": database_url,
        "TRELLIS_TEMPORAL_ADDRESS": address,
        "TRELLIS_TASK_QUEUE": "trellis-scale-out",
        "TRELLIS_API_KEYS": f"{operator_token}:operator:bench,{admin_token}:admin:bench-admin",
        # The benchmark measures throughput, not the per-key limiter (a client of its own would have keys).
        "TRELLIS_RATE_LIMIT": "100000000/minute",
        "TRELLIS_RATE_LIMIT_SESSION_STARTS": "100000000/minute",
        "TRELLIS_WORKFLOW_SANDBOX": "false",  # as `make run` runs the worker (bench/run.py imports the tests')
    }
    ports = [free_port(), free_port()]
    children: list[asyncio.subprocess.Process] = []
    engine = make_engine(database_url, pool_size=2)
    try:
        for _ in range(2):
            children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, str(ROOT / "worker.py"), cwd=ROOT, env=env, stderr=asyncio.subprocess.DEVNULL
                )
            )
        # One API first: it migrates and loads the packs; then the second.
        apis = []
        for port in ports:
            children.append(await asyncio.create_subprocess_exec(*api_command("127.0.0.1", port), cwd=ROOT, env=env))
            client = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=60,
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
                headers={"Authorization": f"Bearer {operator_token}"},
            )
            apis.append(client)
            await wait_healthy(client, children)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports[0]}", timeout=60, headers={"Authorization": f"Bearer {admin_token}"}
        ) as admin:
            rule = await admin.post(
                "/api/v1/workflow-automation",
                json={
                    "workflow_name": "scale-out: mark new customers",
                    "trigger_entity_type": RULE_TYPE,
                    "trigger_action_type": "create",
                    "action_entity_type": RULE_TYPE,
                    "actions": [{"type": "update_field", "field": "welcomed", "value": True}],
                },
            )
            rule.raise_for_status()
            rule_id = str(rule.json()["id"])
        for client in apis:  # warm-up, one instance through each API
            await _instance(client)
        baseline = await _counts(engine, rule_id)
        pool = itertools.cycle(apis)
        lanes = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with lanes:
                await _instance(next(pool))

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(instances)))
        seconds = time.perf_counter() - began
        total = instances + len(apis)
        for _ in range(600):  # the rule runs after the transitions: wait for the last of them
            counts = await _counts(engine, rule_id)
            if counts["rule_runs"] >= counts["customer_creates"] and counts["undispatched"] == 0:
                break
            await asyncio.sleep(0.1)
        per_instance_events = baseline["instance_events"] / len(apis)
        per_instance_entities = baseline["entities"] / len(apis)
        duplicates = (
            counts["duplicate_instance_events"]
            + abs(counts["instance_events"] - per_instance_events * total)
            + abs(counts["entities"] - per_instance_entities * total)
            + abs(counts["rule_runs"] - counts["customer_creates"])
            + abs(counts["action_log_rows"] - counts["customer_creates"])
        )
        for client in apis:
            await client.aclose()
        return {
            "workers": 2,
            "apis": 2,
            "instances": instances,
            "concurrency": concurrency,
            "instances_per_s": instances / seconds,
            "counts": counts,
            "duplicates": int(duplicates),
            "all_completed": counts["instances_completed"] == total,
        }
    finally:
        for child in children:
            if child.returncode is None:
                child.terminate()
                await child.wait()
        await engine.dispose()
