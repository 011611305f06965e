"""Work-item activities: the one write path of an item (each step one transaction, recorded once),
the signal interpreter, and the daily rescore."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.work import store
from core.work.contracts import ItemState, ItemWrite


class InterpretInput(BaseModel):
    now: datetime


class InterpretOutput(BaseModel):
    entities: int
    items: list[uuid.UUID]
    rescored: int


class StartedInput(BaseModel):
    ids: list[uuid.UUID]


class WorkActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="work.record")
    async def record(self, write: ItemWrite) -> ItemState:
        async with self._engine.begin() as conn:
            return await store.record(conn, write)

    @activity.defn(name="work.interpret")
    async def interpret(self, data: InterpretInput) -> InterpretOutput:
        """Create the items the signals call for, rescore every open item, and name the items whose
        workflow may not be running yet (new ones, and any a crash left unstarted)."""
        async with self._engine.begin() as conn:
            entities, wanted = await store.interpret(conn, now=data.now)
        async with self._engine.begin() as conn:
            rescored = await store.rescore_open(conn, now=data.now)
            pending = await store.unstarted(conn)
        return InterpretOutput(entities=entities, items=sorted(set(pending) | set(wanted)), rescored=rescored)

    @activity.defn(name="work.mark_started")
    async def mark_started(self, data: StartedInput) -> None:
        async with self._engine.begin() as conn:
            await store.mark_started(conn, data.ids)
