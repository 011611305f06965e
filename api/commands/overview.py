"""The figures that matter now, across domains, for the console's home: what is running, what is stuck
or failing, and what waits for someone. Each figure links to the list that shows its rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from core.automation import store as automation_store
from core.platform import breakers
from core.platform.settings import Settings
from core.process import instances
from core.steps import store as steps_store


class Overview(BaseModel):
    active_by_template: list[tuple[str, int]]
    stuck_instances: int
    paused_instances: int
    failed_executions_24h: int
    open_dead_letters: int
    open_breakers: int


async def overview(principal: Principal, engine: AsyncEngine, settings: Settings) -> Overview:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return Overview(
            active_by_template=await instances.active_by_template(conn),
            stuck_instances=await instances.stuck_count(conn),
            paused_instances=await instances.paused_count(conn),
            failed_executions_24h=await steps_store.failed_since(conn, datetime.now(UTC) - timedelta(days=1)),
            open_dead_letters=await automation_store.open_dead_letters(conn),
            open_breakers=sum(1 for b in await breakers.listing(conn, settings) if b.state != "closed"),
        )
