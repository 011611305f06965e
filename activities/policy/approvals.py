"""The approval workflow's bookkeeping: its row, and its decision's outcome. (The transition an approved
request performs is the process domain's: activities/process/approvals.py, called by name.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.policy import store
from core.policy.contracts import ApprovalRecord


class ApprovalActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="approval.record")
    async def record(self, data: ApprovalRecord) -> None:
        async with self._engine.begin() as conn:
            await store.record_approval(conn, data)
