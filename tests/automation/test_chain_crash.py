"""The worker process is SIGKILLed while automation chains are mid-flight, then restarted: every
effect is applied exactly once (entities, notifications), and e-mails and webhook deliveries carry
one id each (Message-ID, webhook-id) however often a crash made them be attempted."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

from sqlalchemy import func, select, text

from core.automation.tables import ActionLog
from core.entities.tables import Entity
from core.notifications.tables import Notification
from core.platform.database import make_engine
from tests.support.api import Api, make_settings, open_api
from tests.support.automation import create_entity, create_rule, executions
from tests.support.processes import spawn_worker, worker_env
from tests.support.servers import SmtpServer, WebhookServer

EVENTS = 20


async def test_worker_sigkill_mid_chain_applies_every_effect_once(
    fresh_database: str,
    temporal_address: str,
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    tmp_path: Path,
) -> None:
    url = fresh_database  # only the worker under test dispatches these events
    crash_engine = make_engine(url, pool_size=2)
    run = uuid.uuid4().hex[:8]
    queue = f"trellis-chain-crash-{run}"
    env = worker_env(
        url,
        temporal_address,
        queue,
        smtp_port=smtp_server.port,
        webhook_allow_hosts="127.0.0.1",
        webhook_initial_retry_seconds=0.2,
        dispatcher_poll_seconds=0.5,
    )
    log = tmp_path / "worker.log"
    worker = await spawn_worker(env, log)
    lifespan, client = await open_api(make_settings(url, temporal_address, queue))
    api = Api(client)
    hook = f"/slow/{run}"
    try:
        rule = await create_rule(
            api,
            "job",
            [
                {"type": "create_entity", "entity_type": "ticket", "name": "ticket for {{entity.name}}"},
                {"type": "send_notification", "template": "task_assigned", "recipients": [f"crew-{run}"]},
                {"type": "call_webhook", "url": webhook_server.url(hook)},
                {"type": "send_email", "template": "welcome_email", "to": f"crew-{run}@example.com"},
            ],
        )
        await asyncio.gather(*(create_entity(api, "job", f"job-{run}-{i}") for i in range(EVENTS)))
        for _ in range(600):
            if len(webhook_server.at(hook)) >= EVENTS // 4:
                break
            await asyncio.sleep(0.02)
        delivered_before_kill = len(webhook_server.at(hook))
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        assert 0 < delivered_before_kill < EVENTS, "the kill must land mid-run"
        await asyncio.sleep(1.0)
        worker = await spawn_worker(env, log)

        async def all_done() -> bool:
            rows = await executions(api, rule["id"])
            return len(rows) == EVENTS and all(r["status"] == "completed" for r in rows)

        for _ in range(900):
            if await all_done():
                break
            await asyncio.sleep(0.2)
        rows = await executions(api, rule["id"])
        assert [r["status"] for r in rows] == ["completed"] * EVENTS, [r["reason"] for r in rows]
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)

    async with crash_engine.connect() as conn:
        tickets = (
            await conn.execute(select(func.count()).select_from(Entity).where(Entity.entity_type == "ticket"))
        ).scalar_one()
        notes = (
            await conn.execute(
                select(func.count()).select_from(Notification).where(Notification.recipient == f"crew-{run}")
            )
        ).scalar_one()
        logged = (await conn.execute(select(func.count()).select_from(ActionLog))).scalar_one()
        count = (await conn.execute(text("SELECT execution_count FROM app.d_workflow_automation"))).scalar_one()
    await crash_engine.dispose()
    assert (tickets, notes, logged, count) == (EVENTS, EVENTS, EVENTS * 4, EVENTS)

    hook_ids = {h.headers["webhook-id"] for h in webhook_server.at(hook)}
    assert len(hook_ids) == EVENTS
    mails = smtp_server.mailbox.to(f"crew-{run}@example.com")
    assert len({m["Message-ID"] for m in mails}) == EVENTS
    # Outside effects are at-least-once: an attempt the kill interrupted after the receiver had it is
    # sent again, with the same id, so the receiver can drop it. Every delivery carries one of the ids.
    assert len(webhook_server.at(hook)) >= EVENTS and len(mails) >= EVENTS
