"""One way to read a page of rows: the total count plus one page, each row turned into a public model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.contracts import Page

T = TypeVar("T")


async def fetch_page(
    conn: AsyncConnection,
    stmt: Select[Any],
    *,
    order_by: Sequence[Any],
    limit: int,
    offset: int,
    item: Callable[[Any], T],
) -> Page[T]:
    total = (await conn.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await conn.execute(stmt.order_by(*order_by).limit(limit).offset(offset))).all()
    return Page(items=[item(r) for r in rows], total=int(total), limit=limit, offset=offset)
