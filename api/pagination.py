"""One way to answer a list endpoint: total count plus one page, mapped to the public model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.models import Page

T = TypeVar("T")

# Query parameters of every list endpoint.
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]


async def page_of(
    engine: AsyncEngine,
    stmt: Select[Any],
    *,
    order_by: Sequence[Any],
    limit: int,
    offset: int,
    item: Callable[[Any], T],
) -> Page[T]:
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await conn.execute(stmt.order_by(*order_by).limit(limit).offset(offset))).all()
    return Page(items=[item(r) for r in rows], total=int(total), limit=limit, offset=offset)
