"""The exactly-once ledger every effect is applied under (rule actions and step tools alike).

An effect is keyed (a rule's (rule, event, action index); a step's (execution, path)). Two ways of
recording, chosen by where the effect lands:

- **In the database**: the effect and its record in one transaction, under an advisory lock on the key.
  A retried attempt finds the record and returns it; two attempts running at once (a heartbeat lost to a
  partition) queue on the lock, and the second finds the first's record. Exactly once.
- **Outside** (e-mail, HTTP, MCP, another workflow): check the record, perform, then record. A crash
  between the effect and its record repeats the effect once, so every outside effect carries an id
  derived from its key (Message-ID, webhook-id, update id) by which the receiver can recognise it.

Where the record is kept is the caller's: ``Ledger`` is the one shape both domains' stores implement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Output = TypeVar("Output", bound=BaseModel)
Prepared = TypeVar("Prepared")


class Ledger(Protocol):
    """Where one effect's record lives. ``lock_key`` is unique per effect across every domain."""

    @property
    def lock_key(self) -> str: ...

    async def recorded(self, conn: AsyncConnection) -> dict[str, Any] | None:
        """The recorded output of the effect if an earlier attempt applied it, else None."""
        ...

    async def record(self, conn: AsyncConnection, output: dict[str, Any]) -> None:
        """Record the effect's output; a second record of the same key changes nothing."""
        ...


def _replayed(recorded: dict[str, Any], output: type[Output]) -> Output:
    return output.model_validate({**recorded, "already_done": True})


def _dumped(result: BaseModel) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude={"already_done"})


async def once_in_transaction(
    engine: AsyncEngine,
    ledger: Ledger,
    output: type[Output],
    perform: Callable[[AsyncConnection], Awaitable[Output]],
) -> Output:
    """A database effect and its record in one transaction, under the key's lock."""
    async with engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(ledger.lock_key, 0))))
        if (done := await ledger.recorded(conn)) is not None:
            return _replayed(done, output)
        result = await perform(conn)
        await ledger.record(conn, _dumped(result))
        return result


async def once_outside(
    engine: AsyncEngine,
    ledger: Ledger,
    output: type[Output],
    prepare: Callable[[AsyncConnection], Awaitable[Prepared]],
    perform: Callable[[Prepared], Awaitable[Output]],
) -> Output:
    """An outside effect: skipped if recorded; else ``prepare`` reads what it needs (on the connection
    the check used, closed before anything leaves), ``perform`` does it, and then it is recorded."""
    async with engine.connect() as conn:
        if (done := await ledger.recorded(conn)) is not None:
            return _replayed(done, output)
        prepared = await prepare(conn)
    result = await perform(prepared)
    async with engine.begin() as conn:
        await ledger.record(conn, _dumped(result))
    return result


async def nothing_to_prepare(_: AsyncConnection) -> None:
    """For ``once_outside`` when the effect needs nothing from the database."""
    return None
