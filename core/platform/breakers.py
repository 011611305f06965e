"""Circuit breakers per call target (seed 004), kept in Postgres so every worker shares them.

A target is where a call goes: ``http:<scheme>://<host>:<port>`` for http.request, ``agent:<name>`` for
agent.call, ``mcp:<server>`` for an MCP server's tools. A breaker is closed until
TRELLIS_BREAKER_FAILURES consecutive transient failures open it; while open, calls fail at once without
being sent; after TRELLIS_BREAKER_COOLDOWN_SECONDS one trial call is let through (half-open): its
success closes the breaker, its failure opens it again. Only transient failures (no answer, time-outs,
5xx, 429) count: a refusal (4xx) or a business error says nothing about the target's health.

A target with no row is closed; a success writes nothing unless the row says otherwise, so a healthy
target costs one indexed read per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import CheckConstraint, DateTime, Integer, Table, Text, case, delete, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base
from core.platform.settings import Settings

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
FailureKind = Literal["transient", "permanent", "business"]


class CircuitBreaker(Base):
    __tablename__ = "circuit_breakers"
    __table_args__ = (CheckConstraint("state IN ('closed', 'open', 'half_open')", name="ck_circuit_breakers_state"),)

    target: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(Text, server_default=text("'closed'"))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    opened_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trial_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Policy:
    failures: int
    cooldown: timedelta


def policy_of(settings: Settings, target: str) -> Policy:
    failures, cooldown = settings.breaker_policy(target)
    return Policy(failures, timedelta(seconds=cooldown))


@dataclass(frozen=True)
class Admission:
    allowed: bool
    state: BreakerState
    clean: bool  # closed with no failures counted: a success has nothing to write
    retry_at: datetime | None = None


class BreakerPublic(BaseModel):
    target: str
    state: BreakerState
    consecutive_failures: int
    opened_ts: datetime | None
    half_open_at: datetime | None
    last_error: str | None
    updated_ts: datetime


async def admit(conn: AsyncConnection, target: str, policy: Policy, now: datetime) -> Admission:
    """May a call to ``target`` go now? An open breaker past its cool-down lets exactly one trial call
    through (the row is locked while deciding); a trial that never reported is replaced after another
    cool-down."""
    row = (
        await conn.execute(select(CircuitBreaker.__table__).where(CircuitBreaker.target == target).with_for_update())
    ).first()
    if row is None:
        return Admission(True, "closed", clean=True)
    if row.state == "closed":
        return Admission(True, "closed", clean=row.consecutive_failures == 0)
    since = row.trial_ts if row.state == "half_open" else row.opened_ts
    due = (since or now) + policy.cooldown
    if now < due:
        return Admission(False, row.state, clean=False, retry_at=due)
    await conn.execute(
        update(CircuitBreaker)
        .where(CircuitBreaker.target == target)
        .values(state="half_open", trial_ts=now, updated_ts=now)
    )
    return Admission(True, "half_open", clean=False)


async def succeeded(conn: AsyncConnection, target: str, now: datetime) -> None:
    await conn.execute(
        update(CircuitBreaker)
        .where(CircuitBreaker.target == target)
        .values(state="closed", consecutive_failures=0, opened_ts=None, trial_ts=None, last_error=None, updated_ts=now)
    )


async def failed(conn: AsyncConnection, target: str, policy: Policy, error: str, now: datetime) -> BreakerState:
    """Count a transient failure; the breaker opens at the threshold, or at once after a failed trial."""
    table = cast(Table, CircuitBreaker.__table__)
    counted = table.c.consecutive_failures + 1
    opens = (counted >= policy.failures) | (table.c.state == "half_open")
    statement = (
        insert(table)
        .values(
            target=target,
            state="open" if policy.failures <= 1 else "closed",
            consecutive_failures=1,
            opened_ts=now if policy.failures <= 1 else None,
            last_error=error[:2000],
            updated_ts=now,
        )
        .on_conflict_do_update(
            index_elements=[table.c.target],
            set_={
                "consecutive_failures": counted,
                "state": case((opens, literal("open")), else_=table.c.state),
                "opened_ts": case((opens, literal(now, DateTime(timezone=True))), else_=table.c.opened_ts),
                "trial_ts": None,
                "last_error": error[:2000],
                "updated_ts": now,
            },
        )
        .returning(table.c.state)
    )
    state: BreakerState = (await conn.execute(statement)).scalar_one()
    return state


async def call_through(
    engine: AsyncEngine,
    target: str,
    policy: Policy,
    work: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[BaseException], str | None],
    refuse: Callable[[Admission], BaseException],
) -> T:
    """Run ``work`` if the breaker of ``target`` lets it through, else raise ``refuse(admission)``
    without calling. ``transient`` says whether a failure counts (its message, or None)."""
    async with engine.begin() as conn:
        admission = await admit(conn, target, policy, datetime.now(UTC))
    if not admission.allowed:
        raise refuse(admission)
    try:
        result = await work()
    except BaseException as exc:
        if (message := transient(exc)) is not None:
            async with engine.begin() as conn:
                await failed(conn, target, policy, message, datetime.now(UTC))
        raise
    if not admission.clean:
        async with engine.begin() as conn:
            await succeeded(conn, target, datetime.now(UTC))
    return result


def refusal_message(target: str, admission: Admission) -> str:
    when = f" until {admission.retry_at.isoformat()}" if admission.retry_at else ""
    return (
        f"the circuit breaker of {target} is {admission.state.replace('_', '-')}: calls fail at once{when}; "
        "nothing was sent"
    )


async def listing(conn: AsyncConnection, settings: Settings) -> list[BreakerPublic]:
    rows = (await conn.execute(select(CircuitBreaker.__table__).order_by(CircuitBreaker.target))).all()
    return [
        BreakerPublic(
            target=row.target,
            state=row.state,
            consecutive_failures=row.consecutive_failures,
            opened_ts=row.opened_ts,
            half_open_at=row.opened_ts + policy_of(settings, row.target).cooldown
            if row.state == "open" and row.opened_ts
            else None,
            last_error=row.last_error,
            updated_ts=row.updated_ts,
        )
        for row in rows
    ]


async def reset(conn: AsyncConnection, target: str) -> bool:
    """Forget a breaker (closed, nothing counted); False when there was none."""
    result = await conn.execute(delete(CircuitBreaker).where(CircuitBreaker.target == target))
    return bool(result.rowcount)
