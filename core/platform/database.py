"""The database layer every domain shares: the declarative base (schema ``app``, naming
convention), the engine factory, and the test for errors caused by the data itself.

Each domain declares its own tables in ``core/<domain>/tables.py`` on this ``Base``.
"""

from __future__ import annotations

import asyncio
import select
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import (
    DateTime,
    MetaData,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.platform import direct

SCHEMA = "app"


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def created_now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def is_data_error(exc: BaseException) -> bool:
    """SQLSTATE class 22 (data exception: NUL byte, out of range, bad encoding …): the data is at
    fault, so retrying cannot help and the caller must fix it."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith("22")
    # psycopg refuses some data before sending it (a NUL in a text parameter): no SQLSTATE, same class.
    return isinstance(exc.orig, psycopg.DataError)


def is_too_large(exc: BaseException) -> bool:
    """SQLSTATE class 54 (program limit exceeded: a row or value too big for Postgres)."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith("54")


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection: worth retrying later."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):  # the server answered: only these classes pass with time
        return sqlstate[:2] in ("08", "53", "57")  # connection, insufficient resources, operator intervention
    # No answer at all (refused, reset, socket gone): the driver's connection-level errors.
    return isinstance(exc, OperationalError | InterfaceError)


_DRIVER_PREFIXES = ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://")


def driver_url(database_url: str) -> str:
    """Any Postgres URL as SQLAlchemy's psycopg 3 form (``postgresql+psycopg://``)."""
    for prefix in _DRIVER_PREFIXES:
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    raise ValueError(f"not a Postgres URL: {database_url.split('://', 1)[0]}://…; use postgresql://user:pass@host/db")


def libpq_url(database_url: str) -> str:
    """The same database as a libpq URL, for a raw psycopg connection (LISTEN)."""
    return "postgresql://" + driver_url(database_url).removeprefix("postgresql+psycopg://")


def make_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """A psycopg 3 (async) engine; callers own it and dispose of it on shutdown."""
    # hide_parameters: a logged error shows the statement, never the values (entity data, secrets).
    engine = create_async_engine(
        driver_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )
    engine.dialect.do_ping = _ping_without_round_trip  # type: ignore[method-assign]
    event.listen(engine.sync_engine, "before_cursor_execute", direct.refuse_in_pipeline)
    return engine


def _ping_without_round_trip(dbapi_connection: Any) -> bool:
    """The pool's check of a connection before it is handed out, without SQLAlchemy's ``;`` round trip
    (one per transaction, issue 27). An idle connection has nothing to read: a server that restarted,
    or a backend that was terminated, has sent its last words and closed its end, so anything waiting
    on the socket means the connection is gone, and the pool replaces it, as after the round trip. A
    connection that dies after this check fails its statement, as it could after the round trip too."""
    pgconn = dbapi_connection.driver_connection.pgconn
    if pgconn.status != psycopg.pq.ConnStatus.OK or pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    waiting, _, _ = select.select([pgconn.socket], [], [], 0)
    return not waiting


# Analytics sort a whole template's, or a whole log's, rows (percentiles, distinct counts); past Postgres's
# default 4 MB of work_mem those sorts spill to disk. Their reads get this much, in their own transaction.
ANALYTICS_WORK_MEM = "16MB"


async def read_at_once(
    engine: AsyncEngine, *reads: Callable[[AsyncConnection], Awaitable[Any]], work_mem: str | None = None
) -> list[Any]:
    """Independent reads, each on its own pooled connection at the same time: a request made of several
    takes as long as the slowest, not their sum (decision 0023). Each sees its own snapshot. ``work_mem``
    raises Postgres's sort memory for these reads' transactions only (``ANALYTICS_WORK_MEM``)."""

    async def on_own_connection(read: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        async with engine.connect() as conn:
            if work_mem is not None:
                await conn.execute(text("SELECT set_config('work_mem', :value, true)"), {"value": work_mem})
            return await read(conn)

    return list(await asyncio.gather(*(on_own_connection(read) for read in reads)))
