"""One way to read a page of rows: the total count plus one page, each row turned into a public model.

A page is addressed by ``offset`` (small lists, the first pages) or by ``cursor``: the order key of the
last row of the previous page, opaque to the client (``next_cursor`` of each page). A cursor page is a
keyset read (``WHERE (k1, k2) < (last1, last2) ORDER BY k1, k2 LIMIT n``): it costs the same on page
10,000 as on page 1, where an offset makes Postgres walk every row it skips (decision 0012)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.contracts import Page

T = TypeVar("T")


class CursorInvalid(ValueError):
    """A cursor this list did not hand out (or a tampered one): the API answers 422."""


class Order:
    """A list's order: key columns that end with a unique one, all ascending or all descending (so one
    row comparison, which a btree index on the same columns answers, finds where a page starts)."""

    def __init__(self, *columns: Any, descending: bool = False) -> None:
        self.columns = columns
        self.descending = descending

    def clauses(self) -> list[Any]:
        return [c.desc() if self.descending else c.asc() for c in self.columns]

    def after(self, values: list[Any]) -> ColumnElement[bool]:
        key, last = tuple_(*self.columns), tuple_(*values)
        return key < last if self.descending else key > last

    def encode(self, row: Any) -> str:
        values = [_plain(getattr(row, c.key)) for c in self.columns]
        return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if not isinstance(raw, list) or len(raw) != len(self.columns):
                raise ValueError("wrong shape")
            return [_typed(c, v) for c, v in zip(self.columns, raw, strict=True)]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise CursorInvalid(
                "cursor is not one this list handed out; pass next_cursor of the previous page unchanged"
            ) from exc


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _typed(column: Any, value: Any) -> Any:
    if value is None:
        raise ValueError("a key is null")
    kind = column.type.python_type
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int and not isinstance(value, int):
        raise ValueError("not an integer")
    if kind is str and not isinstance(value, str):
        raise ValueError("not a string")
    return value


async def fetch_page(
    conn: AsyncConnection,
    stmt: Select[Any],
    *,
    order: Order,
    limit: int,
    offset: int,
    item: Callable[[Any], T],
    cursor: str | None = None,
    prepare: Callable[[list[Any]], Awaitable[None]] | None = None,
) -> Page[T]:
    """One page of ``stmt`` in ``order``: by ``cursor`` (keyset) or ``offset``, with the total.
    ``prepare`` sees the page's rows before ``item`` turns each into its model (to load what the rows
    share once, not per row)."""
    total = (await conn.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    paged = stmt.where(order.after(order.decode(cursor))) if cursor else stmt.offset(offset)
    rows = (await conn.execute(paged.order_by(*order.clauses()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if prepare is not None:
        await prepare(rows)
    return Page(
        items=[item(r) for r in rows],
        total=int(total),
        limit=limit,
        offset=offset,
        next_cursor=order.encode(rows[-1]) if more and rows else None,
    )


LIKE_ESCAPE = "\\"


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern, matching itself only (its %, _ and the escape escaped); use with
    ``escape=LIKE_ESCAPE``. Searches in lists add their own % where they mean one."""
    return text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
