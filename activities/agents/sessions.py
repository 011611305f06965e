"""Session bookkeeping: status, working state (orchestrator_state), and on completion final_output,
completed_ts and the summary row. Writes are absolute values, so a retried write changes nothing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.agents import store
from core.agents.sessions import SessionRecord


class SessionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="session.record")
    async def record(self, data: SessionRecord) -> None:
        async with self._engine.begin() as conn:
            await store.record_session(conn, data)
