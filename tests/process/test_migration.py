"""Migrating running instances between template versions: a preview that refuses with reasons, a
batched apply that survives its worker being SIGKILLed mid-batch (each instance exactly once), an
instance that moved on since the preview refused by its own workflow, transitions on the new graph,
and a migration back."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.platform.database import make_engine
from core.process.tables import MigrationItem, WorkflowEvent
from tests.support.api import Api, eventually, make_settings, open_api
from tests.support.process import graph_row, node, template, unique_code
from tests.support.processes import spawn_worker, worker_env

GATE = {"roles": ["approver"]}

# v1: 0 → 1 → 2 → 3 (gated) → 4 → 5 (success)
V1 = [
    node(0, [], [1]),
    node(1, [0], [2]),
    node(2, [1], [3]),
    node(3, [2], [4], approval=GATE),
    node(4, [3], [5]),
    node(5, [4], []),
]
# v2: state 2 is gone (its instances have nowhere to go), 1 leads straight to 3, 3 leads to the new
# state 6 and to 4, and 4 now only fails (an instance there could never succeed).
V2 = [
    node(0, [], [1]),
    node(1, [0], [3]),
    node(3, [1], [6, 4], approval=GATE),
    node(6, [3], [5]),
    node(4, [3], [7]),
    node(5, [6], []),
    node(7, [4], [], success=False),
]
PER_STATE = 10


async def _drive(api: Api, instance_id: str, to: int) -> None:
    """Move a fresh v1 instance from state 0 to ``to`` (approving the gate when passing it)."""
    for state in range(1, to + 1):
        if state == 4:
            assert (await api.decide(instance_id, "approve")).status_code == 200
        response = await api.transition(instance_id, state)
        assert response.status_code == 200, response.text


async def _migrated_events(engine: AsyncEngine, ids: list[str]) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(WorkflowEvent.workflow_data_id, func.count())
            .where(
                WorkflowEvent.workflow_data_id.in_([uuid.UUID(i) for i in ids]),
                WorkflowEvent.event_type == "instance_migrated",
            )
            .group_by(WorkflowEvent.workflow_data_id)
        )
        return Counter({str(i): int(n) for i, n in rows.all()})


async def _outcomes(engine: AsyncEngine, migration_id: str) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(MigrationItem.outcome, func.count())
            .where(MigrationItem.migration_id == uuid.UUID(migration_id))
            .group_by(MigrationItem.outcome)
        )
        return Counter({o: int(n) for o, n in rows.all()})


def plan(code: str, source: int, target: int, **extra: Any) -> dict[str, Any]:
    return {"template_code": code, "from_version": source, "to_version": target, **extra}


async def test_fifty_instances_migrate_once_through_a_worker_crash_and_back(
    fresh_database: str, temporal_address: str, tmp_path: Path
) -> None:
    engine = make_engine(fresh_database, pool_size=2)
    queue = f"trellis-migrate-{uuid.uuid4()}"
    env = worker_env(fresh_database, temporal_address, queue)
    log = tmp_path / "worker.log"
    worker = await spawn_worker(env, log)
    lifespan, client = await open_api(make_settings(fresh_database, temporal_address, queue))
    api = Api(client)
    try:
        code = unique_code("MIGRATE")
        assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, V1))).status_code == 201
        by_state: dict[int, list[str]] = {}
        for state in range(5):
            started = [(await api.start(code, name=f"m-{state}-{i}"))["instance_id"] for i in range(PER_STATE)]
            await asyncio.gather(*(_drive(api, i, state) for i in started))
            by_state[state] = started
        assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, V2))).status_code == 201

        # The preview changes nothing and says why 20 instances cannot go.
        preview = await api.request("POST", "/api/v1/migrations/preview", json=plan(code, 1, 2))
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert body["totals"] == {"migrate": 30, "refused:stuck": 10, "refused:unmapped_state": 10}
        items = {i["instance_id"]: i for i in body["items"]}
        assert {items[i]["refusal"]["code"] for i in by_state[2]} == {"unmapped_state"}
        assert "no state of the same id or name" in items[by_state[2][0]]["refusal"]["message"]
        assert {items[i]["refusal"]["code"] for i in by_state[4]} == {"stuck"}
        assert {items[i]["approval"] for i in by_state[3]} == {"carried"}
        assert {items[i]["to_state_id"] for i in by_state[1]} == {1}
        assert (await graph_row(engine, by_state[1][0]))["template_version"] == 1
        # Only admins migrate.
        assert (
            await api.request("POST", "/api/v1/migrations/preview", json=plan(code, 1, 2), role="operator")
        ).status_code == 403
        bad = await api.request("POST", "/api/v1/migrations/preview", json=plan(code, 1, 9))
        assert bad.status_code == 404 and "no version 9" in bad.json()["detail"]
        same = await api.request("POST", "/api/v1/migrations/preview", json=plan(code, 1, 1))
        assert same.status_code == 422 and same.json()["error"] == "invalid_plan"

        started = await api.request("POST", "/api/v1/migrations", json=plan(code, 1, 2, batch_size=3, pause_ms=100))
        assert started.status_code == 202, started.text
        migration_id = started.json()["id"]
        assert started.json()["totals"] == {"pending": 30, "refused": 20}
        # A second migration of the same version waits for this one.
        again = await api.request("POST", "/api/v1/migrations", json=plan(code, 1, 2))
        assert again.status_code == 409 and again.json()["error"] == "migration_running"

        # An instance moves on after the preview, to a state the new version lacks: its own workflow
        # refuses the migration (the last pending one by id, so its batch comes late).
        moved = max(by_state[1], key=uuid.UUID)
        assert (await api.transition(moved, 2)).status_code == 200

        async def some_migrated() -> bool:
            return (await _outcomes(engine, migration_id))["migrated"] >= 6

        await eventually(some_migrated, attempts=600)
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        assert (await _outcomes(engine, migration_id))["pending"] > 0, "the kill must land mid-migration"
        await asyncio.sleep(1.0)
        worker = await spawn_worker(env, log)

        async def finished() -> dict[str, Any] | None:
            found = (await api.request("GET", f"/api/v1/migrations/{migration_id}")).json()
            return found if found["status"] == "completed" else None

        done = await eventually(finished, attempts=1200)
        assert done["totals"] == {"migrated": 29, "refused": 21}
        refused = await api.request("GET", f"/api/v1/migrations/{migration_id}/items?outcome=refused&limit=50")
        reasons = {i["instance_id"]: i["message"] for i in refused.json()["items"]}
        assert "no state of the same id or name" in reasons[moved]

        # Exactly once each: one instance_migrated event per migrated instance, none for the others.
        migrated = [i for s in (0, 1, 3) for i in by_state[s] if i != moved]
        events = await _migrated_events(engine, [i for ids in by_state.values() for i in ids])
        assert events == Counter({i: 1 for i in migrated})
        event = next(
            e
            for e in (await api.request("GET", f"/api/v1/workflow-instance/{migrated[0]}/events")).json()["items"]
            if e["event_type"] == "instance_migrated"
        )
        assert event["payload"]["from_version"] == 1 and event["payload"]["to_version"] == 2
        assert event["payload"]["migration_id"] == migration_id and event["actor"] == "admin-user"
        # One that stayed in state 1 (``moved`` left it: one of state 1's ten, by chance the first of them
        # one run in ten).
        one = next(i for i in by_state[1] if i != moved)
        row = await graph_row(engine, one)
        assert row["template_version"] == 2
        assert (await graph_row(engine, moved))["template_version"] == 1

        # The new graph rules now: 1 → 3 (v1 had 1 → 2 only); the carried approval gates 3 → 6.
        view = (await api.request("GET", f"/api/v1/workflow-instance/{one}")).json()
        assert view["template_version"] == 2 and [s["id"] for s in view["allowed_next_states"]] == [3]
        assert (await api.transition(one, 2)).json()["error"] == "invalid_transition"
        assert (await api.transition(one, 3)).status_code == 200
        three = by_state[3][0]
        assert (await api.transition(three, 6)).json()["error"] == "approval_pending"
        assert (await api.decide(three, "approve")).status_code == 200
        assert (await api.transition(three, 6)).status_code == 200
        assert (await api.transition(three, 5)).json()["success"] is True

        # Rolling back is a migration back: the instance in 6 has no v1 state unless mapped.
        back = await api.request("POST", "/api/v1/migrations/preview", json=plan(code, 2, 1))
        assert back.json()["totals"] == {"migrate": 28}  # 29 migrated, one finished (three)
        back_started = await api.request("POST", "/api/v1/migrations", json=plan(code, 2, 1, batch_size=50, pause_ms=0))
        back_id = back_started.json()["id"]

        async def back_done() -> dict[str, Any] | None:
            found = (await api.request("GET", f"/api/v1/migrations/{back_id}")).json()
            return found if found["status"] == "completed" else None

        assert (await eventually(back_done, attempts=600))["totals"] == {"migrated": 28}
        assert (await graph_row(engine, by_state[0][0]))["template_version"] == 1
        events = await _migrated_events(engine, [by_state[0][0]])
        assert events[by_state[0][0]] == 2
        assert (await api.transition(by_state[0][0], 1)).status_code == 200
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await engine.dispose()
