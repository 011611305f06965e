"""The worker process is SIGKILLed while 50 instances are mid-transition and then restarted: every
instance completes, and no entity, link or event row is written twice."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity, EntityLink
from core.platform.database import make_engine
from core.process.tables import GraphData, WorkflowEvent
from tests.support.api import Api, make_settings, open_api
from tests.support.processes import spawn_worker, worker_env

LONGEST_SUCCESS_PATH = [1, 2, 3, 4, 6, 7, 8, 9]
INSTANCES = 50


async def test_worker_sigkill_mid_transition_loses_and_duplicates_nothing(
    fresh_database: str, temporal_address: str, tmp_path: Path
) -> None:
    postgres_url = fresh_database
    engine = make_engine(postgres_url, pool_size=2)
    queue = f"trellis-crash-{uuid.uuid4()}"
    run = uuid.uuid4().hex[:8]
    env = worker_env(postgres_url, temporal_address, queue)
    log = tmp_path / "worker.log"
    worker = await spawn_worker(env, log)
    lifespan, client = await open_api(make_settings(postgres_url, temporal_address, queue))
    api = Api(client)
    try:
        instance_ids = [(await api.start("HS_STD", name=f"crash-{run}-{i}"))["instance_id"] for i in range(INSTANCES)]
        done = 0
        in_flight = 0
        retried: Counter[str] = Counter()

        async def drive(instance_id: str) -> None:
            nonlocal done, in_flight
            for target in LONGEST_SUCCESS_PATH:
                while True:
                    in_flight += 1
                    try:
                        response = await api.transition(instance_id, target)
                    finally:
                        in_flight -= 1
                    if response.status_code == 200:
                        break
                    error = response.json().get("error")
                    retried[error] += 1
                    if error in ("transition_in_progress", "timeout", "not_recorded"):
                        await asyncio.sleep(0.2)
                        continue
                    raise AssertionError(response.text)
                done += 1

        drivers = asyncio.gather(*(drive(i) for i in instance_ids))
        total = INSTANCES * len(LONGEST_SUCCESS_PATH)
        for _ in range(600):
            if done >= total // 4:
                break
            await asyncio.sleep(0.01)
        in_flight_at_kill = in_flight
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        assert 0 < done < total, "the kill must land mid-run"
        assert in_flight_at_kill > 0, "transitions must be in flight when the worker dies"
        await asyncio.sleep(1.0)
        worker = await spawn_worker(env, log)
        await asyncio.wait_for(drivers, timeout=240)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)

    for instance_id in instance_ids:
        view = await stored_outcome(engine, instance_id)
        assert view == ("completed", 9, 9, True), instance_id

    ids = [uuid.UUID(i) for i in instance_ids]
    async with engine.connect() as conn:
        kinds = (
            await conn.execute(
                select(WorkflowEvent.event_type, func.count())
                .where(WorkflowEvent.workflow_data_id.in_(ids))
                .group_by(WorkflowEvent.event_type)
            )
        ).all()
        assert dict(kinds) == {
            "state_transition": INSTANCES * 9,
            "entity_created": INSTANCES * 5,
            "entity_updated": INSTANCES * 4,
            "instance_completed": INSTANCES,
        }
        per_instance = (
            await conn.execute(
                select(WorkflowEvent.workflow_data_id, WorkflowEvent.seq, WorkflowEvent.event_type, func.count())
                .where(WorkflowEvent.workflow_data_id.in_(ids))
                .group_by(WorkflowEvent.workflow_data_id, WorkflowEvent.seq, WorkflowEvent.event_type)
                .having(func.count() > 1)
            )
        ).all()
        assert per_instance == []
        entity_types = (
            await conn.execute(
                select(Entity.entity_type, func.count())
                .where(Entity.name.like(f"%crash-{run}-%"))
                .group_by(Entity.entity_type)
            )
        ).all()
        assert dict(entity_types) == {
            "cust": INSTANCES,
            "quote": INSTANCES,
            "order": INSTANCES,
            "task": INSTANCES,
            "invoice": INSTANCES,
        }
        roots = select(GraphData.root_entity_id).where(GraphData.id.in_(ids)).scalar_subquery()
        links = (
            await conn.execute(
                select(func.count()).select_from(EntityLink).where(EntityLink.parent_entity_id.in_(roots))
            )
        ).scalar_one()
        assert links == INSTANCES * 4
    await engine.dispose()


async def stored_outcome(engine: AsyncEngine, instance_id: str) -> tuple[str, int, int, bool | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    GraphData.workflow_status, GraphData.current_state_id, GraphData.last_seq, GraphData.success_flag
                ).where(GraphData.id == uuid.UUID(instance_id))
            )
        ).one()
    return row[0], row[1], row[2], row[3]
