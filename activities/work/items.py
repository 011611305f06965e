"""Work-item activities: the one write path of an item (each step one transaction, recorded once),
the signal interpreter, and the daily rescore."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, field_validator
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.work import store
from core.work.contracts import ItemState, ItemWrite, WorkItemInput, item_input


class InterpretInput(BaseModel):
    now: datetime


class InterpretOutput(BaseModel):
    entities: int
    items: list[WorkItemInput]
    rescored: int

    @field_validator("items", mode="before")
    @classmethod
    def _ids(cls, items: Any) -> Any:
        """Histories recorded before the SLA carry bare item ids."""
        return [{"item_id": i} if isinstance(i, str) else i for i in items] if isinstance(items, list) else items


class StartedInput(BaseModel):
    ids: list[uuid.UUID]


class WorkActivities:
    def __init__(self, engine: AsyncEngine, max_data_bytes: int) -> None:
        self._engine = engine
        self._max_data_bytes = max_data_bytes  # TRELLIS_ENTITY_MAX_BYTES: an item's execution_data, like an entity

    @activity.defn(name="work.record")
    async def record(self, write: ItemWrite) -> ItemState:
        async with self._engine.begin() as conn:
            return await store.record(conn, write, max_data_bytes=self._max_data_bytes)

    @activity.defn(name="work.interpret")
    async def interpret(self, data: InterpretInput) -> InterpretOutput:
        """Create the items the signals call for, rescore every open item, and name the items whose
        workflow may not be running yet (new ones, and any a crash left unstarted)."""
        async with self._engine.begin() as conn:
            entities, wanted = await store.interpret(conn, now=data.now)
        async with self._engine.begin() as conn:
            rescored = await store.rescore_open(conn, now=data.now)
            pending = await store.unstarted(conn)
            items = await store.get_items(conn, sorted(set(pending) | set(wanted)))
        return InterpretOutput(entities=entities, items=[item_input(i) for i in items], rescored=rescored)

    @activity.defn(name="work.mark_started")
    async def mark_started(self, data: StartedInput) -> None:
        async with self._engine.begin() as conn:
            await store.mark_started(conn, data.ids)
