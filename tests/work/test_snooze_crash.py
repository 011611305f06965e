"""The worker process is SIGKILLed while people snooze and escalate items, then restarted: every change
is applied exactly once (each retried with its Idempotency-Key until answered), the items' workflows
carry on from their histories, and nothing is recorded or notified twice."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.notifications.tables import Notification
from core.platform.database import make_engine
from core.work.tables import WorkItem
from tests.support.api import Api, make_settings, open_api
from tests.support.processes import spawn_worker, worker_env
from tests.support.work import Q, customer, demo

ITEMS = 20


async def test_a_worker_killed_mid_snooze_loses_nothing(
    fresh_database: str, temporal_address: str, tmp_path: Path
) -> None:
    engine: AsyncEngine = make_engine(fresh_database, pool_size=2)
    queue = f"trellis-snooze-crash-{uuid.uuid4()}"
    env = worker_env(fresh_database, temporal_address, queue)
    log = tmp_path / "worker.log"
    worker = await spawn_worker(env, log)
    lifespan, client = await open_api(
        make_settings(fresh_database, temporal_address, queue, temporal_answer_seconds=3.0)
    )
    api = Api(client)
    try:
        items = []
        for _ in range(ITEMS):
            entity = await customer(api, revenue_impact_tier=5, churn_risk_score=8)
            items.append((await demo(api, entity, "operator-user"))[2]["id"])
        done = 0
        in_flight = 0
        retried: Counter[int] = Counter()

        async def change(item_id: str, path: str, body: dict[str, object]) -> None:
            nonlocal done, in_flight
            key = f"{path}-{item_id}"
            while True:
                in_flight += 1
                try:
                    response = await api.request(
                        "POST",
                        f"{Q}/executions/{item_id}/{path}",
                        role="operator",
                        json=body,
                        headers={"Idempotency-Key": key},
                    )
                finally:
                    in_flight -= 1
                if response.status_code == 200:
                    done += 1
                    return
                assert response.status_code in (503, 504), response.text  # "may still be applied": retry
                retried[response.status_code] += 1
                await asyncio.sleep(0.3)

        async def work(item_id: str) -> None:
            await change(item_id, "snooze", {"days": 5})
            await change(item_id, "escalate", {"escalation_user_id": "approver-user"})

        running = asyncio.gather(*(work(i) for i in items))
        for _ in range(500):
            if done >= ITEMS // 2:
                break
            await asyncio.sleep(0.01)
        in_flight_at_kill = in_flight
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        assert done < 2 * ITEMS, "the kill must land mid-run"
        assert in_flight_at_kill > 0, "changes must be in flight when the worker dies"
        await asyncio.sleep(1.0)
        worker = await spawn_worker(env, log)
        await asyncio.wait_for(running, timeout=120)

        ids = [uuid.UUID(i) for i in items]
        async with engine.connect() as conn:
            rows = (await conn.execute(select(WorkItem.__table__).where(WorkItem.id.in_(ids)))).all()
            notes = (
                (await conn.execute(select(Notification.source).where(Notification.template == "work_item_escalated")))
                .scalars()
                .all()
            )
        # Two steps each (snooze, escalate), each once; 5 days away scores 395.
        assert (
            sorted((r.status, r.version, r.snooze_days, r.priority_score) for r in rows)
            == [("snoozed", 2, 5, 395)] * ITEMS
        )
        assert sorted(notes) == sorted(f"work-item-{i}" for i in items)  # one notification each
        # The workflows carry on: a change after the restart applies.
        resumed = await api.request(
            "PATCH", f"{Q}/executions/{items[0]}/status", role="operator", json={"status": "underway"}
        )
        assert (resumed.status_code, resumed.json()["priority_score"]) == (200, 965), resumed.text
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await engine.dispose()
