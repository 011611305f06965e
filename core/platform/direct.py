"""Prebuilt statements sent straight through the connection's psycopg driver (issue 27, decision 0025).

A state entry spent more of the worker's CPU in SQLAlchemy's execution path (its greenlet hand-off,
execution context and result objects) and in waiting for one round trip per statement than in
Postgres. The hot paths' statements are built once (``functools.cache``d SQLAlchemy constructs); this
module compiles each once more into the driver's SQL and sends it on the same connection, so in the
same transaction as any SQLAlchemy statement around it:

* ``fetch`` (and ``first``) send a statement and read its rows (named tuples of the values psycopg
  loads: uuid, text, numbers, times, jsonb as Python objects, as SQLAlchemy returns them for these
  types); ``execute`` sends one and leaves its rows to be read later;
* ``send`` sends one without reading anything back (an insert without RETURNING);
* ``pipeline`` lets those statements go out together: inside it, nothing waits for Postgres until a
  ``fetch`` needs its rows (or the block ends), so BEGIN, the statements queued before a fetch and the
  fetch itself travel in one round trip. An error of a queued statement is raised at that point.

Only statements built once may be sent (the cache holds the compiled form per statement object). A
SQLAlchemy ``conn.execute`` inside a pipeline would read its result before psycopg has it and lose its
rows, so ``make_engine`` installs ``refuse_in_pipeline``, which makes that mistake an error.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.expression import Executable


@dataclass(frozen=True, slots=True)
class _Driven:
    """A statement compiled for psycopg: its SQL and how its parameters are prepared, as SQLAlchemy
    would (default values of bound literals, then each type's bind processor, e.g. JSON)."""

    sql: str
    compiled: Compiled
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(self.compiled.construct_params(dict(params)) or {})
        for name, process in self.processors:
            if name in values:
                values[name] = process(values[name])
        return values


@functools.lru_cache(maxsize=512)
def _driven(statement: Executable, dialect: Dialect) -> _Driven:
    """Compiled once per statement object (statements sent here are built once and bind every value)."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    for column in compiled._result_columns:  # what SQLAlchemy would convert, this module would not
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            raise TypeError(f"{column.name}: SQLAlchemy converts {column.type!r} results; read it with conn.execute")
    if "POSTCOMPILE" in compiled.string:
        raise TypeError("an expanding parameter (IN a list) needs SQLAlchemy; bind an array and use = ANY(...)")
    processors = []
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return _Driven(compiled.string, compiled, tuple(processors))


async def _driver(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)  # the engine's driver (make_engine)
    return driver


async def _failed(conn: AsyncConnection, driven_sql: str, exc: psycopg.Error) -> DBAPIError:
    """psycopg's error as SQLAlchemy's (what every caller catches: DataError, IntegrityError …); a
    lost connection is invalidated so the pool does not hand it out again."""
    driver = await _driver(conn)
    lost = conn.dialect.is_disconnect(exc, driver, None)  # type: ignore[arg-type]
    if lost:
        await conn.invalidate()
    error = DBAPIError.instance(
        driven_sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=lost, dialect=conn.dialect
    )
    assert isinstance(error, DBAPIError)  # a psycopg.Error always maps to one
    return error


class Rows:
    """A statement sent by ``execute``; ``all`` reads its rows, waiting for them only if they have not
    come back yet (in a pipeline, a later fetch may have brought them)."""

    def __init__(self, conn: AsyncConnection, driven: _Driven, cursor: psycopg.AsyncCursor[Any]) -> None:
        self._conn, self._driven, self._cursor = conn, driven, cursor

    async def all(self) -> list[Any]:
        try:
            return await self._cursor.fetchall()
        except psycopg.Error as exc:
            raise await _failed(self._conn, self._driven.sql, exc) from exc

    async def first(self) -> Any | None:
        rows = await self.all()
        return rows[0] if rows else None


async def execute(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Rows:
    """Send ``statement`` (built once) with ``params``; inside ``pipeline`` it is only queued."""
    driven = _driven(statement, conn.dialect)
    driver = await _driver(conn)
    cursor = driver.cursor(row_factory=namedtuple_row)
    try:
        await cursor.execute(driven.sql, driven.values(params))
    except psycopg.Error as exc:
        raise await _failed(conn, driven.sql, exc) from exc
    return Rows(conn, driven, cursor)


async def fetch(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
    """Run ``statement`` (built once) with ``params`` and return its rows."""
    return await (await execute(conn, statement, params)).all()


async def first(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Any | None:
    """The first row ``statement`` returns, or None."""
    return await (await execute(conn, statement, params)).first()


async def send(conn: AsyncConnection, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``statement`` (built once, binding each value; no RETURNING) once per row. Inside ``pipeline``
    it is only queued: it reaches Postgres with the next fetch or at the end of the block."""
    if not rows:
        return
    driven = _driven(statement, conn.dialect)
    driver = await _driver(conn)
    try:
        cursor = driver.cursor()
        await cursor.executemany(driven.sql, [driven.values(row) for row in rows])
    except psycopg.Error as exc:
        raise await _failed(conn, driven.sql, exc) from exc


@asynccontextmanager
async def pipeline(conn: AsyncConnection) -> AsyncIterator[None]:
    """Statements sent by ``fetch`` and ``send`` inside this block go out together (see the module)."""
    driver = await _driver(conn)
    try:
        async with driver.pipeline():
            yield
    except psycopg.Error as exc:
        raise await _failed(conn, "(pipeline)", exc) from exc


def refuse_in_pipeline(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """``before_cursor_execute``: SQLAlchemy reads a statement's result as soon as it is sent, which in
    pipeline mode is before psycopg has it; its rows would be lost without an error. Refuse instead."""
    if conn.connection.driver_connection.pgconn.pipeline_status:
        raise RuntimeError("a SQLAlchemy statement inside core.platform.direct.pipeline: use direct.fetch or send")
