"""Console pages: sign-in, the inbox, an instance (its DAG, history and next states), a work item, and
the analytics of a template and of the agents."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.commands import analytics as analytics_commands
from api.commands import forecasts as forecast_commands
from api.commands import instances as instance_commands
from api.commands import overview as overview_commands
from api.commands import steps as step_commands
from api.commands import work as work_commands
from api.commands.policies import ApprovalTicket
from api.commands.rights import can
from api.deps import principal_of
from api.errors import ApiError
from api.inbox.kinds import KINDS, gather
from api.inbox.kinds import decide as decide_item
from api.ui import charts, designer, lists, live, migrations, people, runs, starts, work
from api.ui.common import (
    DECISIONS,
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    SESSION_COOKIE,
    SignIn,
    back,
    engine,
    flash,
    gateway,
    page,
    read_form,
    same_origin,
    secure,
    sign,
    viewer,
)
from api.ui.dag import BOX_H, BOX_W, draw
from core.platform import console_sessions
from core.platform.settings import Settings
from core.process import templates
from core.process.contracts import CancelCreate, TransitionCreate

router = APIRouter(prefix="/ui", include_in_schema=False)


def install_console(app: Any) -> None:
    @app.exception_handler(SignIn)
    async def _sign_in(request: Request, _: SignIn) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    app.include_router(starts.router)  # first: /ui/instances/new before /ui/instances/{id}
    app.include_router(router)
    app.include_router(lists.router)
    app.include_router(runs.router)
    app.include_router(live.router)
    app.include_router(work.router)
    app.include_router(designer.router)
    app.include_router(migrations.router)
    app.include_router(people.router)


STATIC = Path(__file__).parent / "static"


@router.get("/static/console.css")
async def stylesheet() -> FileResponse:
    """The console's stylesheet (a file: the Content-Security-Policy allows no inline style)."""
    return FileResponse(STATIC / "console.css", media_type="text/css")


@router.get("")
async def home(request: Request) -> HTMLResponse:
    """The figures that matter now, each linking to the list behind it."""
    principal, csrf = await viewer(request)
    figures = await overview_commands.overview(principal, engine(request), request.app.state.settings)
    waiting = await gather(engine(request), principal)
    return page("home.html", principal=principal, csrf=csrf, figures=figures, inbox=len(waiting), **flash(request))


@router.get("/login")
async def loginpage(request: Request) -> HTMLResponse:
    # The sign-in form's token is issued and signed here: a value another site makes up is refused.
    issued = f"{secrets.token_urlsafe(18)}.{int(time.time())}"
    token = f"{issued}.{sign(request, 'login', issued)}"
    response = page("login.html", csrf=token, **flash(request))
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui", secure=secure(request))
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), expected):
        return back(request, "/ui/login", error="The sign-in form expired; try again.")
    issued, _, signature = expected.rpartition(".")
    when = issued.rpartition(".")[2]
    fresh = when.isdigit() and 0 <= time.time() - int(when) <= LOGIN_FORM_SECONDS
    if not fresh or not hmac.compare_digest(signature, sign(request, "login", issued)):
        return back(request, "/ui/login", error="The sign-in form expired; try again.")
    key = form.get("key", "").strip()
    principal = principal_of(request, key) if key else None
    if principal is None:
        return back(request, "/ui/login", error="That API key is not known.")
    settings: Settings = request.app.state.settings
    async with engine(request).begin() as conn:
        token = await console_sessions.open_session(
            conn,
            principal.name,
            principal.role,
            datetime.now(UTC),
            timedelta(hours=settings.console_session_hours),
        )
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.console_session_hours * 3600),
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _, csrf = await viewer(request)
    await read_form(request, csrf)
    async with engine(request).begin() as conn:
        await console_sessions.revoke(conn, request.cookies.get(SESSION_COOKIE, ""), datetime.now(UTC))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/inbox")
async def inboxpage(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    items = await gather(engine(request), principal)
    return page("inbox.html", principal=principal, csrf=csrf, items=items, **flash(request))


@router.post("/inbox/{item_id}/decision")
async def decide(request: Request, item_id: str) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    kind, _, reference = item_id.partition(":")
    if kind not in KINDS:
        return back(request, "/ui/inbox", error=f"No inbox item {item_id}.")
    try:
        decision = DECISIONS.validate_python({k: v for k, v in form.items() if v != ""} | _numbers(form))
        await decide_item(kind, reference, decision, principal, engine(request), gateway(request))
    except ValidationError as exc:
        return back(request, _after(kind, reference), error=_problem(exc))
    except ApiError as exc:
        return back(request, _after(kind, reference) if exc.status != 404 else "/ui/inbox", error=exc.detail)
    except ValueError:
        return back(request, "/ui/inbox", error=f"No inbox item {item_id}.")
    return back(request, _after(kind, reference), note=f"Done: {decision.action}.")


def _numbers(form: dict[str, str]) -> dict[str, Any]:
    return {"days": int(form["days"])} if form.get("days", "").isdigit() else {}


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'][1:]) or 'form'}: {first['msg']}"


def _after(kind: str, reference: str) -> str:
    if kind in ("approval", "deadline", "at_risk"):
        return f"/ui/instances/{reference.partition(':')[0]}"
    if kind == "work":
        return f"/ui/work/{reference}"
    return "/ui/inbox"


@router.get("/instances/{instance_id}")
async def instancepage(request: Request, instance_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        view = await instance_commands.get(instance_id, principal, engine(request), gateway(request))
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    async with engine(request).connect() as conn:
        template = await templates.get_by_id(conn, uuid.UUID(view.workflow_head_id))
    assert template is not None
    taken = {h.to for h in view.state_history} | {h.from_ for h in view.state_history if h.from_ is not None}
    path = {(h.from_, h.to) for h in view.state_history if h.from_ is not None}
    gate = view.pending_approval
    waiting = gate is not None and gate.status == "pending"
    drawing = draw(
        template.workflow_graph.states,
        current=view.current_state.id,
        taken=taken,
        allowed=set() if waiting else {s.id for s in view.allowed_next_states},
        path=path,
    )
    gate_id = f"approval:{view.instance_id}:{gate.state_id}" if gate is not None else None
    outlook = None
    if view.workflow_status == "active":
        try:
            settings = request.app.state.settings
            outlook = await forecast_commands.instance_forecast(instance_id, principal, engine(request), settings)
        except ApiError:
            outlook = None  # no recorded state to forecast from yet: the page shows none
    return page(
        "instance.html",
        outlook=outlook,
        principal=principal,
        csrf=csrf,
        view=view,
        template=template,
        drawing=drawing,
        box_w=BOX_W,
        box_h=BOX_H,
        waiting=waiting,
        gate_id=gate_id,
        may_cancel=view.workflow_status == "active" and can(principal, "operator"),
        may_pause=view.workflow_status == "active" and can(principal, "operator"),
        paused=view.paused,
        base=f"/ui/instances/{view.instance_id}",
        **flash(request),
    )


@router.post("/instances/{instance_id}/transition")
async def transition(request: Request, instance_id: uuid.UUID) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = f"/ui/instances/{instance_id}"
    try:
        body = TransitionCreate(to_state_id=int(form.get("to_state_id", "")), comment=form.get("comment") or None)
        view = await instance_commands.transition(instance_id, body, principal, engine(request), gateway(request))
    except (ValueError, ValidationError):
        return back(request, here, error="Choose one of the next states.")
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    if isinstance(view, ApprovalTicket):
        return back(request, here, note=f"Sent for approval: {view.reason}. It moves once approved.")
    return back(request, here, note=f"Moved to {view.current_state.name}.")


@router.post("/instances/{instance_id}/cancel")
async def cancel_instance(request: Request, instance_id: uuid.UUID) -> Response:
    """The seeds' emergency termination: the instance ends where it stands, recorded in its history."""
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = f"/ui/instances/{instance_id}"
    try:
        body = CancelCreate(comment=(form.get("comment") or None))
        await instance_commands.cancel(instance_id, body, principal, engine(request), gateway(request))
    except ValidationError as exc:
        return back(request, here, error=_problem(exc))
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, here, note="Cancelled.")


@router.get("/work/{item_id}")
async def workpage(request: Request, item_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        item = await work_commands.get(item_id, principal, engine(request))
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    open_item = item.status not in ("completed", "skipped")
    return page(
        "work.html",
        principal=principal,
        csrf=csrf,
        item=item,
        open_item=open_item,
        **flash(request),
    )


@router.get("/analytics")
async def analytics_index(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    async with engine(request).connect() as conn:
        codes = await templates.active_codes(conn)
    flows = await step_commands.workflows(principal, engine(request), limit=200)
    return page(
        "analytics_index.html", principal=principal, csrf=csrf, codes=codes, flows=[w.name for w in flows.items]
    )


@router.get("/analytics/templates/{code}")
async def template_analyticspage(request: Request, code: str) -> HTMLResponse:
    """A template's figures: its graph coloured by time spent against each state's expectation, the
    success rate per day, the duration histogram and the top bottlenecks (the figures of
    GET /api/v1/analytics/templates/{code})."""
    principal, csrf = await viewer(request)
    try:
        template, figures = await analytics_commands.template_figures(code[:50], principal, engine(request))
        advice = await analytics_commands.template_recommendations(code[:50], principal, engine(request))
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    drawing, boxes = charts.heat_map(template.workflow_graph.states, figures.states)
    trend = charts.line(
        [
            (d.day.strftime("%d %b"), d.success_rate_pct or 0.0, f"{d.success_rate_pct or 0:g}% of {d.finished}")
            for d in figures.success_by_day[-60:]
        ]
    )
    histogram = charts.bars(
        [
            (f"{b.to_seconds / 86400:.1f} d", float(b.instances), f"{b.instances} up to {b.to_seconds / 86400:.1f} d")
            for b in figures.duration_histogram
        ]
    )
    return page(
        "analytics_template.html",
        principal=principal,
        csrf=csrf,
        template=template,
        figures=figures,
        drawing=drawing,
        boxes=boxes,
        box_w=BOX_W,
        box_h=BOX_H,
        trend=trend,
        histogram=histogram,
        advice=advice,
    )


@router.get("/analytics/agents")
async def agents_analyticspage(request: Request) -> HTMLResponse:
    """What the agents cost per day (last 30 days), and their calls by agent and model."""
    principal, csrf = await viewer(request)
    figures = await analytics_commands.agent_figures(
        principal, engine(request), request.app.state.settings, from_ts=datetime.now(UTC) - timedelta(days=30), top=20
    )
    cost = charts.bars(
        [(d.day.strftime("%d %b"), d.cost_usd, f"${d.cost_usd:,.4f} on {d.day:%d %b}") for d in figures.by_day]
    )
    return page("analytics_agents.html", principal=principal, csrf=csrf, figures=figures, cost=cost)
