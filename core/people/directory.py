"""The people directory and fair sharing of work (seed 001, phase 2E; issue 25).

A person has directory roles (beyond their API key's role: ``manager``, ``csm``…), skills, and a cap on
the open items they hold. Work assigned to a role pool is distributed among the pool's active members:

- ``round_robin``: the next member after the pool's cursor (a row locked while it moves);
- ``least_loaded``: the member with the fewest open items (work items and step tasks);
- ``skill``: the least loaded of the members who have every skill the item asks for.

A member at their cap is passed over; when every member is, the item stays with the pool and is handed
out by ``rebalance`` once someone's load drops. A member who is out of office (an absence covering now)
is replaced by their delegate, and the item is marked as held on behalf of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.people.tables import Absence, AssignmentChange, DistributionCursor, Person
from core.platform.contracts import JsonDatetime, RequestModel, RequestPart

Strategy = Literal["round_robin", "least_loaded", "skill"]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Skill = Annotated[str, Field(min_length=1, max_length=100)]
MAX_DELEGATION_HOPS = 3


class Distribution(RequestPart):
    """How work given to a role is shared: among the people of ``pool`` (a directory role), by
    ``strategy``, each holding at most ``cap`` open items (default: their own ``max_open``)."""

    pool: Name
    strategy: Strategy = "least_loaded"
    skills: list[Skill] = Field(default_factory=list, max_length=20, description="What the item asks for (skill)")
    cap: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _skills(self) -> Distribution:
        if self.strategy == "skill" and not self.skills:
            raise ValueError("the skill strategy needs the skills the item asks for")
        return self


class PersonBody(RequestModel):
    roles: list[Name] = Field(default_factory=list, max_length=50, description="Directory roles (pools)")
    skills: list[Skill] = Field(default_factory=list, max_length=100)
    max_open: int | None = Field(default=None, ge=1, le=10_000, description="Open items they may hold at once")
    active: bool = True


class PersonPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    roles: list[str]
    skills: list[str]
    max_open: int | None
    active: bool
    open_items: int = 0
    away: AbsencePublic | None = None


class AbsenceBody(RequestModel):
    delegate: Name
    starts_ts: JsonDatetime
    ends_ts: JsonDatetime
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _order(self) -> AbsenceBody:
        if self.ends_ts <= self.starts_ts:
            raise ValueError("ends_ts must come after starts_ts")
        return self


class AbsencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    person: str
    delegate: str
    starts_ts: datetime
    ends_ts: datetime
    reason: str | None


class AssignmentChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item: str
    from_assignee: str | None
    to_assignee: str
    on_behalf_of: str | None
    how: str
    actor: str
    reason: str | None
    ts: datetime


PersonPublic.model_rebuild()


@dataclass(frozen=True)
class Choice:
    assignee: str
    on_behalf_of: str | None
    how: str


# Open items per assignee: work items not final, and open step-workflow tasks.
_LOAD = text(
    """
    SELECT assignee, count(*) AS n FROM (
        SELECT assignee FROM app.work_item WHERE status IN ('not_started', 'underway', 'snoozed')
        UNION ALL
        SELECT assignee FROM app.workflow_tasks WHERE status = 'open'
    ) AS open_items WHERE assignee = ANY(:names) GROUP BY assignee
    """
)


async def loads(conn: AsyncConnection, names: list[str]) -> dict[str, int]:
    rows = await conn.execute(_LOAD, {"names": names})
    found = {r.assignee: int(r.n) for r in rows}
    return {n: found.get(n, 0) for n in names}


async def save_person(conn: AsyncConnection, name: str, body: PersonBody) -> PersonPublic:
    values = body.model_dump()
    row = (
        await conn.execute(
            pg_insert(Person)
            .values(name=name, **values)
            .on_conflict_do_update(index_elements=[Person.name], set_={**values, "updated_ts": text("now()")})
            .returning(Person.__table__)
        )
    ).one()
    return PersonPublic.model_validate(row)


async def _listed(conn: AsyncConnection, role: str | None) -> list[PersonPublic]:
    """The directory's rows (of one role's pool), without their loads or absences."""
    stmt = select(Person.__table__).order_by(Person.name)
    if role is not None:
        stmt = stmt.where(Person.roles.contains([role]))
    return [PersonPublic.model_validate(r) for r in await conn.execute(stmt)]


async def people(conn: AsyncConnection, now: datetime, role: str | None = None) -> list[PersonPublic]:
    found = await _listed(conn, role)
    counted = await loads(conn, [p.name for p in found])
    away = await absences_now(conn, now)
    return [p.model_copy(update={"open_items": counted[p.name], "away": away.get(p.name)}) for p in found]


async def person(conn: AsyncConnection, name: str) -> PersonPublic | None:
    row = (await conn.execute(select(Person.__table__).where(Person.name == name))).first()
    return PersonPublic.model_validate(row) if row is not None else None


async def directory_roles(conn: AsyncConnection, name: str) -> list[str]:
    found = (await conn.execute(select(Person.roles).where(Person.name == name, Person.active))).scalar()
    return list(found or [])


async def absences_now(conn: AsyncConnection, now: datetime) -> dict[str, AbsencePublic]:
    rows = await conn.execute(
        select(Absence.__table__).where(Absence.starts_ts <= now, Absence.ends_ts > now).order_by(Absence.created_ts)
    )
    return {r.person: AbsencePublic.model_validate(r) for r in rows}


async def add_absence(conn: AsyncConnection, name: str, body: AbsenceBody, actor: str) -> AbsencePublic:
    row = (
        await conn.execute(
            insert(Absence).values(person=name, created_by=actor, **body.model_dump()).returning(Absence.__table__)
        )
    ).one()
    return AbsencePublic.model_validate(row)


async def end_absences(conn: AsyncConnection, name: str, now: datetime) -> int:
    done = await conn.execute(update(Absence).where(Absence.person == name, Absence.ends_ts > now).values(ends_ts=now))
    return done.rowcount


def stand_in(person: str, away: dict[str, AbsencePublic]) -> tuple[str, str | None]:
    """Who holds what would be ``person``'s now: they themselves, or their delegate (followed for a few
    hops while the delegate is away too), with the person it is held on behalf of."""
    holder, hops = person, 0
    while holder in away and hops < MAX_DELEGATION_HOPS:
        holder, hops = away[holder].delegate, hops + 1
    return holder, (person if holder != person else None)


async def covers(conn: AsyncConnection, actor: str, now: datetime) -> list[str]:
    """The people ``actor`` stands in for now (out of office, their delegate is ``actor``)."""
    away = await absences_now(conn, now)
    return sorted(p for p in away if stand_in(p, away)[0] == actor)


async def direct(conn: AsyncConnection, assignee: str, now: datetime) -> Choice:
    """An item assigned to a person: theirs, or their delegate's on their behalf while they are away."""
    holder, behalf = stand_in(assignee, await absences_now(conn, now))
    return Choice(holder, behalf, "delegation" if behalf else "direct")


async def choose(
    conn: AsyncConnection, rule: Distribution, now: datetime, excluding: frozenset[str] = frozenset()
) -> Choice | None:
    """The person an item of ``rule``'s pool goes to now, or None when everyone is at their cap.
    ``excluding``: people it must not go to, nor to anyone standing in for them (an approval's requester
    and the approvers chosen already)."""
    away = await absences_now(conn, now)
    members = [
        p
        for p in await _listed(conn, rule.pool)  # loads are counted below, for whoever holds the work
        if p.active
        and (rule.strategy != "skill" or set(rule.skills) <= set(p.skills))
        and p.name not in excluding
        and stand_in(p.name, away)[0] not in excluding
    ]
    if not members:
        return None
    counted = await loads(conn, sorted({stand_in(p.name, away)[0] for p in members}))

    def room(member: PersonPublic) -> tuple[str, str | None] | None:
        holder, behalf = stand_in(member.name, away)
        cap = rule.cap or member.max_open
        return None if cap is not None and counted.get(holder, 0) >= cap else (holder, behalf)

    if rule.strategy == "round_robin":
        position = (
            await conn.execute(
                pg_insert(DistributionCursor)
                .values(pool=rule.pool, position=0)
                .on_conflict_do_update(index_elements=[DistributionCursor.pool], set_={"pool": rule.pool})
                .returning(DistributionCursor.position)
            )
        ).scalar_one()  # the upsert locks the cursor's row until the transaction ends
        for step in range(len(members)):
            index = (position + step) % len(members)
            fits = room(members[index])
            if fits is not None:
                await conn.execute(
                    update(DistributionCursor)
                    .where(DistributionCursor.pool == rule.pool)
                    .values(position=(index + 1) % len(members))
                )
                return Choice(fits[0], fits[1], rule.strategy)
        return None
    ranked = sorted(members, key=lambda m: (counted.get(stand_in(m.name, away)[0], 0), m.name))
    for member in ranked:
        fits = room(member)
        if fits is not None:
            return Choice(fits[0], fits[1], rule.strategy)
    return None


async def log_change(
    conn: AsyncConnection,
    *,
    item: str,
    from_assignee: str | None,
    choice: Choice,
    actor: str,
    reason: str | None = None,
) -> None:
    await conn.execute(
        insert(AssignmentChange).values(
            item=item,
            from_assignee=from_assignee,
            to_assignee=choice.assignee,
            on_behalf_of=choice.on_behalf_of,
            how=choice.how,
            actor=actor,
            reason=reason,
        )
    )


async def changes(conn: AsyncConnection, item: str | None, limit: int) -> list[AssignmentChangePublic]:
    stmt = select(AssignmentChange.__table__).order_by(AssignmentChange.ts.desc(), AssignmentChange.id).limit(limit)
    if item is not None:
        stmt = stmt.where(AssignmentChange.item == item)
    return [AssignmentChangePublic.model_validate(r) for r in await conn.execute(stmt)]
