"""The worker process is SIGKILLed while step executions run, then restarted: every execution completes,
and no step's effect happens twice (one entity per execution, one event per update, one notification,
one process instance started and moved on once, one record per step)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.tables import Entity, EntityEvent
from core.notifications.tables import Notification
from core.platform.database import make_engine
from core.process.tables import GraphData, WorkflowEvent
from core.steps.tables import StepRecord
from tests.support.api import Api, make_settings, open_api
from tests.support.processes import spawn_worker, worker_env
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow

EXECUTIONS = 12
LIMIT = {"timeoutMs": 1000}  # a lost attempt is retried 11 s after it started
STEPS = 8


@dataclass
class CrashStage:
    """A worker process of its own (on a fresh database and task queue) and an API in this process."""

    api: Api
    engine: AsyncEngine
    env: dict[str, str]
    log: Path
    worker: asyncio.subprocess.Process

    async def kill(self) -> None:
        self.worker.send_signal(signal.SIGKILL)
        assert await self.worker.wait() == -signal.SIGKILL

    async def restart(self) -> None:
        await asyncio.sleep(0.5)
        self.worker = await spawn_worker(self.env, self.log)


@contextlib.asynccontextmanager
async def crash_stage(database: str, temporal_address: str, tmp_path: Path, name: str) -> AsyncIterator[CrashStage]:
    engine: AsyncEngine = make_engine(database, pool_size=2)
    queue = f"trellis-{name}-{uuid.uuid4()}"
    env = worker_env(database, temporal_address, queue, webhook_allow_hosts="127.0.0.1")
    log = tmp_path / "worker.log"
    worker = await spawn_worker(env, log)
    lifespan, client = await open_api(make_settings(database, temporal_address, queue))
    stage = CrashStage(Api(client), engine, env, log, worker)
    try:
        yield stage
    finally:
        stage.worker.send_signal(signal.SIGTERM)
        await stage.worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await engine.dispose()


def steps(kind: str, slow_url: str) -> list[dict[str, object]]:
    return [
        {"name": "make", "tool": "entity.create", "params": {"entity_type": kind, "name": "${input.label}"}, **LIMIT},
        {"name": "first", "tool": "entity.update", "params": {"id": "${make.id}", "fields": {"n": 1}}, **LIMIT},
        {
            "name": "open",
            "tool": "instance.start",
            "params": {"template_code": "HS_STD", "entity": {"name": "${input.label}", "fields": {}}},
            **LIMIT,
        },
        {"name": "pause", "tool": "http.request", "params": {"url": slow_url}, **LIMIT},
        {"name": "second", "tool": "entity.update", "params": {"id": "${make.id}", "fields": {"n": 2}}, **LIMIT},
        {
            "name": "advance",
            "tool": "instance.transition",
            "params": {"instance_id": "${open.instance_id}", "to_state_id": 1},
            **LIMIT,
        },
        {
            "name": "tell",
            "tool": "notify.send",
            "params": {"recipients": ["${input.label}"], "subject": "done", "body": "n is ${second.fields.n}"},
            **LIMIT,
        },
        {"name": "third", "tool": "entity.update", "params": {"id": "${make.id}", "fields": {"n": 3}}, **LIMIT},
    ]


async def test_a_worker_killed_mid_execution_repeats_no_effect(
    fresh_database: str, temporal_address: str, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    async with crash_stage(fresh_database, temporal_address, tmp_path, "steps-crash") as stage:
        api, engine = stage.api, stage.engine
        kind = unique_name("crash")
        name = unique_name("crash_wf")
        await create(api, workflow(name, steps(kind, webhook_server.url(f"/slow/{name}"))))
        labels = [f"crash-{i}-{uuid.uuid4().hex[:6]}" for i in range(EXECUTIONS)]
        started = [await execute(api, name, {"label": label}) for label in labels]

        async def recorded() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(StepRecord))).scalar_one())

        total = EXECUTIONS * STEPS
        for _ in range(2000):
            if await recorded() >= total // 4:
                break
            await asyncio.sleep(0.01)
        at_kill = await recorded()
        await stage.kill()
        assert 0 < at_kill < total, "the kill must land mid-run"
        await stage.restart()
        done = await asyncio.gather(*(finished(api, s["id"], attempts=1200) for s in started))
        assert [d["status"] for d in done] == ["completed"] * EXECUTIONS, [d["error"] for d in done]

        async with engine.connect() as conn:
            entities = (await conn.execute(select(Entity.id, Entity.fields).where(Entity.entity_type == kind))).all()
            events = Counter(
                (r.entity_id, r.event_kind)
                for r in await conn.execute(
                    select(EntityEvent.entity_id, EntityEvent.event_kind).where(EntityEvent.entity_type == kind)
                )
            )
            notes = Counter(
                (await conn.execute(select(Notification.recipient).where(Notification.recipient.in_(labels)))).scalars()
            )
            instances = (
                await conn.execute(select(GraphData.id, GraphData.state_history, GraphData.current_state_id))
            ).all()
            transitions = Counter(
                (r.workflow_data_id, r.from_state_id, r.to_state_id)
                for r in await conn.execute(
                    select(
                        WorkflowEvent.workflow_data_id, WorkflowEvent.from_state_id, WorkflowEvent.to_state_id
                    ).where(WorkflowEvent.event_type == "state_transition")
                )
            )
            records = (
                await conn.execute(select(StepRecord.execution_id, func.count()).group_by(StepRecord.execution_id))
            ).all()
        assert len(entities) == EXECUTIONS and all(e.fields == {"n": 3} for e in entities)
        # created once, then three updates, each once (an update also emits its field_change events)
        assert Counter(kind_ for _, kind_ in events) == {
            "create": EXECUTIONS,
            "update": EXECUTIONS,
            **({"field_change": EXECUTIONS} if any(k == "field_change" for _, k in events) else {}),
        }
        assert {count for (_, kind_), count in events.items() if kind_ == "create"} == {1}
        assert {count for (_, kind_), count in events.items() if kind_ == "update"} == {3}
        assert sorted(notes.values()) == [1] * EXECUTIONS
        assert sorted(count for _, count in records) == [STEPS] * EXECUTIONS
        # one instance per execution (the database holds only this test's), entered and moved on once
        assert sorted(str(i.id) for i in instances) == sorted(d["output"]["open"]["instance_id"] for d in done)
        assert all(i.current_state_id == 1 and [h["to"] for h in i.state_history] == [0, 1] for i in instances)
        assert set(transitions.values()) == {1}
        assert Counter((before, after) for _, before, after in transitions) == {
            (None, 0): EXECUTIONS,
            (0, 1): EXECUTIONS,
        }


SAGAS = 8


async def test_a_worker_killed_while_compensating_runs_each_compensation_once(
    fresh_database: str, temporal_address: str, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    async with crash_stage(fresh_database, temporal_address, tmp_path, "saga-crash") as stage:
        api, engine = stage.api, stage.engine
        kind = unique_name("saga")
        name = unique_name("saga_wf")
        undo = {"strategy": "compensate"}
        definition = workflow(
            name,
            [
                {
                    "name": "reserve",
                    "tool": "entity.create",
                    "params": {"entity_type": kind, "name": "r ${input.label}"},
                    "onError": {**undo, "compensationStep": "release"},
                    **LIMIT,
                },
                {
                    "name": "charge",
                    "tool": "entity.create",
                    "params": {"entity_type": kind, "name": "c ${input.label}"},
                    "onError": {**undo, "compensationStep": "refund"},
                    **LIMIT,
                },
                {
                    "name": "ship",
                    "tool": "http.request",
                    "params": {"url": webhook_server.url(f"/gone/{name}")},
                    "onError": undo | {"compensationStep": "refund"},
                    **LIMIT,
                },
            ],
        )
        definition["compensations"] = [
            # runs first (reverse order): a database effect, then a slow call so the kill lands between
            {"name": "refund", "tool": "entity.update", "params": {"id": "${charge.id}", "status": "refunded"}},
            {"name": "release", "tool": "http.request", "params": {"url": webhook_server.url(f"/slow/{name}")}},
        ]
        await create(api, definition)
        labels = [f"saga-{i}" for i in range(SAGAS)]
        started = [await execute(api, name, {"label": label}) for label in labels]

        async def compensations() -> int:
            async with engine.connect() as conn:
                return int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(StepRecord).where(StepRecord.path.like("compensate.%"))
                        )
                    ).scalar_one()
                )

        for _ in range(2000):
            if await compensations() >= 2:
                break
            await asyncio.sleep(0.01)
        at_kill = await compensations()
        await stage.kill()
        assert 0 < at_kill < 2 * SAGAS, "the kill must land while compensating"
        await stage.restart()
        done = await asyncio.gather(*(finished(api, s["id"], attempts=1200) for s in started))
        assert [d["status"] for d in done] == ["compensated"] * SAGAS, [d["error"] for d in done]
        for execution in done:
            paths = [s["path"] for s in sorted(execution["steps"], key=lambda s: s["finished_ts"])]
            assert [p for p in paths if p.startswith("compensate.")] == ["compensate.charge", "compensate.reserve"]

        async with engine.connect() as conn:
            updates = Counter(
                (
                    await conn.execute(
                        select(EntityEvent.entity_id).where(
                            EntityEvent.entity_type == kind, EntityEvent.event_kind == "update"
                        )
                    )
                ).scalars()
            )
            refunded = (
                await conn.execute(
                    select(func.count())
                    .select_from(Entity)
                    .where(Entity.entity_type == kind, Entity.status == "refunded")
                )
            ).scalar_one()
        assert refunded == SAGAS and sorted(updates.values()) == [1] * SAGAS  # each refund applied once
        release_ids = {h.headers["webhook-id"] for h in webhook_server.at(f"/slow/{name}")}
        assert len(release_ids) == SAGAS  # a repeated release after the kill carries the same webhook-id
