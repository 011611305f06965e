"""Console pages: sign-in, the inbox, an instance (its DAG, history and next states), a work item, and
the analytics of a template and of the agents."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError

from api.commands import analytics as analytics_commands
from api.commands import instances as instance_commands
from api.commands import work as work_commands
from api.deps import Principal, principal_of
from api.errors import ApiError
from api.inbox.contracts import Decision
from api.inbox.kinds import KINDS, gather
from api.inbox.kinds import decide as decide_item
from api.ui import charts
from api.ui.dag import BOX_H, BOX_W, draw
from core.platform import console_sessions
from core.platform.settings import Settings
from core.process import templates
from core.process.contracts import TransitionCreate

router = APIRouter(prefix="/ui", include_in_schema=False)

SESSION_COOKIE = "trellis_session"
LOGIN_COOKIE = "trellis_login"
LOGIN_FORM_SECONDS = 3600
PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True)
)
DECISIONS: TypeAdapter[Any] = TypeAdapter(Decision)


class SignIn(Exception):
    """No valid key in the cookie: go to the sign-in page."""


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(PAGES.get_template(name).render(**context), status_code=status)


def console_secret(settings: Settings) -> bytes:
    """The key the console signs with (sign-in forms, CSRF tokens, flash messages): derived from the API
    keys, which every API process has and no browser sees, so replicas agree without sharing anything
    more. Changing the keys ends the outstanding forms, as it should."""
    tokens = sorted(k.token for k in settings.parsed_api_keys())
    return hashlib.sha256(b"trellis-console\0" + "\0".join(tokens).encode()).digest()


def _sign(request: Request, purpose: str, value: str) -> str:
    secret: bytes = request.app.state.console_secret
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    """A form posted from this origin: browsers send Origin on a POST, and a page on another site or
    another port of this host has another one."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def _viewer(request: Request) -> tuple[Principal, str]:
    """The signed-in principal (a live server-side session whose key still exists) and its forms' token."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise SignIn
    async with _engine(request).connect() as conn:
        found = await console_sessions.session_of(conn, token, datetime.now(UTC))
    keys: dict[bytes, Principal] = request.app.state.api_keys
    principal = next((p for p in keys.values() if found is not None and (p.name, p.role) == found), None)
    if principal is None:
        raise SignIn
    request.app.state.rate_limits.hit(request.app.state.rate_limits.requests, principal.name, "requests")
    return principal, _sign(request, "csrf", token)


async def _form(request: Request, csrf: str) -> dict[str, str]:
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=False))
    if not _same_origin(request) or not hmac.compare_digest(form.pop("csrf", ""), csrf):
        raise ApiError(403, "csrf", "the form is stale or came from another site; reload the page and try again")
    return form


def _flash(request: Request) -> dict[str, Any]:
    """The message a redirect after a form carries, shown only when this server signed it (a link from
    elsewhere cannot put its own words under the console's banner)."""
    shown: dict[str, Any] = {"error": None, "note": None}
    for kind in shown:
        text = request.query_params.get(kind)
        signature = request.query_params.get("sig", "")
        if text is not None and hmac.compare_digest(signature, _sign(request, f"flash-{kind}", text)):
            shown[kind] = text
    return shown


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _gateway(request: Request) -> Any:
    return request.app.state.gateway


def _back(request: Request, path: str, *, error: str | None = None, note: str | None = None) -> RedirectResponse:
    """Back to a page, with a message the server signs (see ``_flash``)."""
    kind, text = ("error", error) if error else ("note", note)
    query = f"?{kind}={quote(text)}&sig={_sign(request, f'flash-{kind}', text)}" if text else ""
    return RedirectResponse(f"{path}{query}", status_code=303)


def install_console(app: Any) -> None:
    @app.exception_handler(SignIn)
    async def _sign_in(request: Request, _: SignIn) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    app.include_router(router)


STATIC = Path(__file__).parent / "static"


@router.get("/static/console.css")
async def stylesheet() -> FileResponse:
    """The console's stylesheet (a file: the Content-Security-Policy allows no inline style)."""
    return FileResponse(STATIC / "console.css", media_type="text/css")


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/inbox", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    # The sign-in form's token is issued and signed here: a value another site makes up is refused.
    issued = f"{secrets.token_urlsafe(18)}.{int(time.time())}"
    token = f"{issued}.{_sign(request, 'login', issued)}"
    response = _page("login.html", csrf=token, **_flash(request))
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui", secure=_secure(request))
    return response


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.post("/login")
async def login(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not _same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), expected):
        return _back(request, "/ui/login", error="The sign-in form expired; try again.")
    issued, _, signature = expected.rpartition(".")
    when = issued.rpartition(".")[2]
    fresh = when.isdigit() and 0 <= time.time() - int(when) <= LOGIN_FORM_SECONDS
    if not fresh or not hmac.compare_digest(signature, _sign(request, "login", issued)):
        return _back(request, "/ui/login", error="The sign-in form expired; try again.")
    key = form.get("key", "").strip()
    principal = principal_of(request, key) if key else None
    if principal is None:
        return _back(request, "/ui/login", error="That API key is not known.")
    settings: Settings = request.app.state.settings
    async with _engine(request).begin() as conn:
        token = await console_sessions.open_session(
            conn,
            principal.name,
            principal.role,
            datetime.now(UTC),
            timedelta(hours=settings.console_session_hours),
        )
    response = RedirectResponse("/ui/inbox", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.console_session_hours * 3600),
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _, csrf = await _viewer(request)
    await _form(request, csrf)
    async with _engine(request).begin() as conn:
        await console_sessions.revoke(conn, request.cookies.get(SESSION_COOKIE, ""), datetime.now(UTC))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/inbox")
async def inbox_page(request: Request) -> HTMLResponse:
    principal, csrf = await _viewer(request)
    items = await gather(_engine(request), principal)
    return _page("inbox.html", principal=principal, csrf=csrf, items=items, **_flash(request))


@router.post("/inbox/{item_id}/decision")
async def decide(request: Request, item_id: str) -> Response:
    principal, csrf = await _viewer(request)
    form = await _form(request, csrf)
    kind, _, reference = item_id.partition(":")
    if kind not in KINDS:
        return _back(request, "/ui/inbox", error=f"No inbox item {item_id}.")
    try:
        decision = DECISIONS.validate_python({k: v for k, v in form.items() if v != ""} | _numbers(form))
        await decide_item(kind, reference, decision, principal, _engine(request), _gateway(request))
    except ValidationError as exc:
        return _back(request, _after(kind, reference), error=_problem(exc))
    except ApiError as exc:
        return _back(request, _after(kind, reference) if exc.status != 404 else "/ui/inbox", error=exc.detail)
    except ValueError:
        return _back(request, "/ui/inbox", error=f"No inbox item {item_id}.")
    return _back(request, _after(kind, reference), note=f"Done: {decision.action}.")


def _numbers(form: dict[str, str]) -> dict[str, Any]:
    return {"days": int(form["days"])} if form.get("days", "").isdigit() else {}


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'][1:]) or 'form'}: {first['msg']}"


def _after(kind: str, reference: str) -> str:
    if kind in ("approval", "deadline"):
        return f"/ui/instances/{reference.partition(':')[0]}"
    if kind == "work":
        return f"/ui/work/{reference}"
    return "/ui/inbox"


@router.get("/instances/{instance_id}")
async def instance_page(request: Request, instance_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await _viewer(request)
    try:
        view = await instance_commands.get(instance_id, principal, _engine(request), _gateway(request))
    except ApiError as exc:
        return _page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    async with _engine(request).connect() as conn:
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
    return _page(
        "instance.html",
        principal=principal,
        csrf=csrf,
        view=view,
        template=template,
        drawing=drawing,
        box_w=BOX_W,
        box_h=BOX_H,
        waiting=waiting,
        gate_id=gate_id,
        **_flash(request),
    )


@router.post("/instances/{instance_id}/transition")
async def transition(request: Request, instance_id: uuid.UUID) -> Response:
    principal, csrf = await _viewer(request)
    form = await _form(request, csrf)
    here = f"/ui/instances/{instance_id}"
    try:
        body = TransitionCreate(to_state_id=int(form.get("to_state_id", "")), comment=form.get("comment") or None)
        view = await instance_commands.transition(instance_id, body, principal, _engine(request), _gateway(request))
    except (ValueError, ValidationError):
        return _back(request, here, error="Choose one of the next states.")
    except ApiError as exc:
        return _back(request, here, error=exc.detail)
    return _back(request, here, note=f"Moved to {view.current_state.name}.")


@router.get("/work/{item_id}")
async def work_page(request: Request, item_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await _viewer(request)
    try:
        item = await work_commands.get(item_id, principal, _engine(request))
    except ApiError as exc:
        return _page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    open_item = item.status not in ("completed", "skipped")
    return _page(
        "work.html",
        principal=principal,
        csrf=csrf,
        item=item,
        open_item=open_item,
        **_flash(request),
    )


@router.get("/analytics")
async def analytics_index(request: Request) -> HTMLResponse:
    principal, csrf = await _viewer(request)
    async with _engine(request).connect() as conn:
        codes = await templates.active_codes(conn)
    return _page("analytics_index.html", principal=principal, csrf=csrf, codes=codes)


@router.get("/analytics/templates/{code}")
async def template_analytics_page(request: Request, code: str) -> HTMLResponse:
    """A template's figures: its graph coloured by time spent against each state's expectation, the
    success rate per day, the duration histogram and the top bottlenecks (the figures of
    GET /api/v1/analytics/templates/{code})."""
    principal, csrf = await _viewer(request)
    try:
        template, figures = await analytics_commands.template_figures(code[:50], principal, _engine(request))
    except ApiError as exc:
        return _page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
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
    return _page(
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
    )


@router.get("/analytics/agents")
async def agents_analytics_page(request: Request) -> HTMLResponse:
    """What the agents cost per day (last 30 days), and their calls by agent and model."""
    principal, csrf = await _viewer(request)
    figures = await analytics_commands.agent_figures(
        principal, _engine(request), request.app.state.settings, from_ts=datetime.now(UTC) - timedelta(days=30), top=20
    )
    cost = charts.bars(
        [(d.day.strftime("%d %b"), d.cost_usd, f"${d.cost_usd:,.4f} on {d.day:%d %b}") for d in figures.by_day]
    )
    return _page("analytics_agents.html", principal=principal, csrf=csrf, figures=figures, cost=cost)
