"""Session bookkeeping: status, working state (orchestrator_state), and on completion final_output,
completed_ts and the summary row. Writes are absolute values, so a retried write changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.agents.sessions import SessionRecord
from core.agents.tables import AgentSession, SessionStateData, SessionSummary


class SessionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="session.record")
    async def record(self, data: SessionRecord) -> None:
        state = data.state
        now = datetime.now(UTC)
        values: dict[str, object] = {
            "session_status": data.status,
            "active_agents": state.selected,
            "tokens_used": state.tokens,
            "cost_usd": state.cost_usd,
            "status_reason": state.reason,
        }
        if data.final:
            values.update(final_output=data.final_output, completed_ts=now)
        async with self._engine.begin() as conn:
            await conn.execute(update(AgentSession).where(AgentSession.session_id == data.session_id).values(**values))
            await conn.execute(
                insert(SessionStateData)
                .values(session_id=data.session_id, state_data=state.model_dump(mode="json"), updated_ts=now)
                .on_conflict_do_update(
                    index_elements=[SessionStateData.session_id],
                    set_={"state_data": state.model_dump(mode="json"), "updated_ts": now},
                )
            )
            if data.final:
                summary = {
                    "summary_text": data.summary_text or (state.reason or data.status),
                    "success_flag": data.status == "completed",
                    "total_tokens": state.tokens,
                    "cost_usd": state.cost_usd,
                    "agent_calls": state.calls,
                }
                await conn.execute(
                    insert(SessionSummary)
                    .values(session_id=data.session_id, created_ts=now, **summary)
                    .on_conflict_do_update(index_elements=[SessionSummary.session_id], set_=summary)
                )
