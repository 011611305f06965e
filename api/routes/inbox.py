"""One inbox: every decision a person owes (GET /api/v1/inbox), and deciding any of them
(POST /api/v1/inbox/{id}/decision), routed to the update of the workflow that owns it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import EngineDep, GatewayDep, Principal, Reader
from api.errors import ApiError
from api.inbox.contracts import Decision, DecisionOutcome, InboxItem
from api.inbox.kinds import decide as decide_item
from api.inbox.kinds import gather
from core.platform.contracts import Role

router = APIRouter(prefix="/api/v1/inbox", tags=["inbox"])

ItemId = Annotated[
    str,
    Path(
        max_length=200,
        pattern=r"^(approval|policy|deadline|at_risk|session|work|task):[A-Za-z0-9:_-]+$",
        description="An inbox item's id, as GET /api/v1/inbox gives it",
    ),
]
Kind = Annotated[
    str | None, Query(pattern="^(approval|policy|deadline|at_risk|session|work|task)$", description="Only this kind")
]


@router.get("", response_model=list[InboxItem])
async def inbox(
    engine: EngineDep,
    principal: Reader,
    kind: Kind = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    role: Role | None = None,
) -> list[InboxItem]:
    """What the caller owes (their own items and their role's; admins see all), most urgent first.
    ``assignee`` / ``role`` narrow it to one person or role (someone else's: admins only)."""
    if principal.role != "admin" and (
        (assignee is not None and assignee != principal.name) or (role is not None and role != principal.role)
    ):
        raise ApiError(403, "forbidden", "only admins read another person's or role's inbox")
    viewer = principal
    if principal.role == "admin" and (assignee is not None or role is not None):
        # An admin reading one person's or role's inbox sees it as they would.
        viewer = Principal(name=assignee or "", role=role or "viewer")
    return await gather(engine, viewer, kind)


@router.post("/{item_id}/decision", response_model=DecisionOutcome)
async def decide(
    item_id: ItemId, body: Decision, engine: EngineDep, gateway: GatewayDep, principal: Reader
) -> DecisionOutcome:
    """Decide an item: approve / reject (approvals), start / complete / snooze / skip / escalate (work
    items). An action the caller may not take is a 403; one no longer possible is a 409."""
    kind, _, reference = item_id.partition(":")
    try:
        result = await decide_item(kind, reference, body, principal, engine, gateway)
    except ValueError as exc:  # a malformed reference (not a UUID)
        raise ApiError(404, "not_found", f"no inbox item {item_id}") from exc
    return DecisionOutcome(id=item_id, kind=kind, action=body.action, result=result)
