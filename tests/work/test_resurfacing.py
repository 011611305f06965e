"""A snoozed item resurfaces by itself (time-skipping server): its workflow's timers rescore it at three
days before ``snooze_until`` (critical) and at ``snooze_until`` (due), with no API call between."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from core.work.tables import WorkItem
from tests.support.api import Api
from tests.support.work import act, customer, demo


async def stored(engine: AsyncEngine, item_id: str) -> tuple[str, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(WorkItem.status, WorkItem.priority_score).where(WorkItem.id == uuid.UUID(item_id))
            )
        ).one()
    return row.status, row.priority_score


async def test_a_snoozed_item_comes_back_without_a_call(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    entity = await customer(skipping_api, revenue_impact_tier=5, churn_risk_score=8)
    risk = (await demo(skipping_api, entity, "operator-user"))[2]
    snoozed = await act(skipping_api, "operator", risk["id"], "snooze", days=5)
    assert snoozed.json()["priority_score"] == 395  # 5 days away: low

    await time_skipping_env.sleep(timedelta(days=1, hours=23).total_seconds())
    assert await stored(engine, risk["id"]) == ("snoozed", 395)  # nothing yet: 3 days and 1 hour away
    await time_skipping_env.sleep(timedelta(hours=2).total_seconds())
    assert await stored(engine, risk["id"]) == ("snoozed", 997)  # the critical timer fired
    await time_skipping_env.sleep(timedelta(days=3).total_seconds())
    assert await stored(engine, risk["id"]) == ("snoozed", 1000)  # due

    resumed = await act(skipping_api, "operator", risk["id"], "status", "PATCH", status="underway")
    assert (resumed.json()["status"], resumed.json()["priority_score"]) == ("underway", 965)
