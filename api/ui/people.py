"""The people page (issue 25, seed 001 phase 2E): the directory with each person's roles, skills, open
items against their cap and who stands in for them; out of office with a delegate for a period, back
again, and handing over in bulk what someone holds. Every change goes through the people commands
(api/commands/people.py), with their rule: a person changes their own absence, an operator or an admin
anyone's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.commands import people as people_commands
from api.commands.people import HandoverRequest
from api.commands.rights import can
from api.errors import ApiError
from api.ui.common import back, engine, flash, gateway, page, read_form, viewer
from core.people.directory import AbsenceBody

router = APIRouter(prefix="/ui", include_in_schema=False)
_PATH = "/ui/people"


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "form"
    return f"{where.replace('_ts', '')}: {first['msg']}"


@router.get("/people")
async def people_page(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    role = (request.query_params.get("role") or "").strip()[:200] or None
    try:
        found = await people_commands.people(principal, engine(request), role)
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    now = datetime.now(UTC)
    roles = sorted({r for p in found for r in p.roles})
    return page(
        "people.html",
        principal=principal,
        csrf=csrf,
        people=found,
        role=role or "",
        roles=roles,
        me=next((p for p in found if p.name == principal.name), None),
        can_change_others=can(principal, "operator"),
        starts=now.strftime("%Y-%m-%dT%H:%M"),
        ends=(now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        **flash(request),
    )


def _when(value: str) -> str:
    """A datetime-local field (no zone: the console speaks UTC, as its pages show) as ISO 8601 in UTC."""
    return f"{value}:00+00:00" if len(value) == 16 else value


@router.post("/people/absence")
async def set_absence(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    name = form.get("person", "").strip() or principal.name
    try:
        body = AbsenceBody.model_validate(
            {
                "delegate": form.get("delegate", "").strip(),
                "starts_ts": _when(form.get("starts", "")),
                "ends_ts": _when(form.get("ends", "")),
                "reason": form.get("reason", "").strip() or None,
            }
        )
        absence = await people_commands.set_absence(name, body, principal, engine(request))
    except ValidationError as exc:
        return back(request, _PATH, error=f"Out of office not saved: {_problem(exc)}")
    except ApiError as exc:
        return back(request, _PATH, error=f"Out of office not saved: {exc.detail}")
    until = absence.ends_ts.strftime("%d %b %H:%M UTC")
    return back(request, _PATH, note=f"{name} is out of office until {until}; {absence.delegate} stands in.")


@router.post("/people/absence/end")
async def end_absence(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    name = form.get("person", "").strip() or principal.name
    try:
        await people_commands.end_absence(name, principal, engine(request))
    except ApiError as exc:
        return back(request, _PATH, error=exc.detail)
    return back(request, _PATH, note=f"{name} is back: new work goes to them again.")


@router.post("/people/handover")
async def handover(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    name = form.get("person", "").strip()
    try:
        body = HandoverRequest(to=form.get("to", "").strip(), reason=form.get("reason", "").strip() or None)
        moved = await people_commands.handover(name, body, principal, engine(request), gateway(request))
    except ValidationError as exc:
        return back(request, _PATH, error=f"Nothing handed over: {_problem(exc)}")
    except ApiError as exc:
        return back(request, _PATH, error=f"Nothing handed over: {exc.detail}")
    return back(
        request, _PATH, note=f"{moved.moved} of {len(moved.items)} open items of {name} handed over to {body.to}."
    )
