"""People and fair sharing of work (seed 001, phase 2E): the directory (roles, skills, caps), absences
with delegates (out of office), reassigning items, handing over everything someone holds, and the log of
every assignment change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.commands import people as commands
from api.commands.people import HandoverRequest, MoveResult, ReassignRequest, RebalanceResult
from api.deps import Admin, EngineDep, GatewayDep, Operator, Reader
from core.people.directory import AbsenceBody, AbsencePublic, AssignmentChangePublic, PersonBody, PersonPublic

router = APIRouter(prefix="/api/v1", tags=["people"])
PersonName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@\-]+$")]


@router.get("/people", response_model=list[PersonPublic])
async def list_people(
    engine: EngineDep, principal: Reader, role: Annotated[str | None, Query(min_length=1, max_length=200)] = None
) -> list[PersonPublic]:
    """The directory (or one role's pool), each person with their open items and any absence now."""
    return await commands.people(principal, engine, role)


@router.post("/assignments/rebalance", response_model=RebalanceResult)
async def rebalance(engine: EngineDep, principal: Operator) -> RebalanceResult:
    """Hand out the items role pools hold because everyone was at their cap (also done whenever a work
    item closes or the directory changes)."""
    return await commands.rebalance(principal, engine)


@router.put("/people/{name}", response_model=PersonPublic)
async def save_person(name: PersonName, body: PersonBody, engine: EngineDep, principal: Admin) -> PersonPublic:
    return await commands.save_person(name, body, principal, engine)


@router.put("/people/{name}/absence", response_model=AbsencePublic, status_code=201)
async def set_absence(name: PersonName, body: AbsenceBody, engine: EngineDep, principal: Reader) -> AbsencePublic:
    """Out of office: from ``starts_ts`` to ``ends_ts``, what would be assigned to ``name`` goes to the
    delegate, marked on behalf of them (their own, an operator or an admin)."""
    return await commands.set_absence(name, body, principal, engine)


@router.delete("/people/{name}/absence", status_code=204)
async def end_absence(name: PersonName, engine: EngineDep, principal: Reader) -> None:
    await commands.end_absence(name, principal, engine)


@router.post("/people/{name}/handover", response_model=MoveResult)
async def handover(
    name: PersonName, body: HandoverRequest, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> MoveResult:
    """Hand everything ``name`` holds (open work items and step tasks) to someone else, in bulk."""
    return await commands.handover(name, body, principal, engine, gateway)


@router.post("/assignments/reassign", response_model=MoveResult)
async def reassign(body: ReassignRequest, engine: EngineDep, gateway: GatewayDep, principal: Operator) -> MoveResult:
    """Give one or many items (work:<id>, task:<id>) to a person, recorded with who and why."""
    return await commands.reassign(body, principal, engine, gateway)


@router.get("/assignments/changes", response_model=list[AssignmentChangePublic])
async def assignment_changes(
    engine: EngineDep,
    principal: Reader,
    item: Annotated[str | None, Query(min_length=6, max_length=60)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AssignmentChangePublic]:
    return await commands.changes(principal, engine, item, limit)
