"""What every console page shares: the signed-in viewer (a server-side session), the forms' CSRF
token and same-origin check, messages carried across a redirect (signed, so a link from elsewhere
cannot put words under the console's banner), and page rendering."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import TypeAdapter

from api.deps import Principal
from api.errors import ApiError
from api.inbox.contracts import Decision
from core.platform import console_sessions
from core.platform.settings import Settings

SESSION_COOKIE = "trellis_session"
LOGIN_COOKIE = "trellis_login"
LOGIN_FORM_SECONDS = 3600
PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True)
)
DECISIONS: TypeAdapter[Any] = TypeAdapter(Decision)


def span(seconds: float | None) -> str:
    """A duration as a person reads it: minutes, hours or days."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{max(seconds / 60, 0):.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


PAGES.filters["span"] = span


class SignIn(Exception):
    """No valid key in the cookie: go to the sign-in page."""


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(PAGES.get_template(name).render(**context), status_code=status)


def console_secret(settings: Settings) -> bytes:
    """The key the console signs with (sign-in forms, CSRF tokens, flash messages): derived from the API
    keys, which every API process has and no browser sees, so replicas agree without sharing anything
    more. Changing the keys ends the outstanding forms, as it should."""
    tokens = sorted(k.token for k in settings.parsed_api_keys())
    return hashlib.sha256(b"trellis-console\0" + "\0".join(tokens).encode()).digest()


def sign(request: Request, purpose: str, value: str) -> str:
    secret: bytes = request.app.state.console_secret
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    """A form posted from this origin: browsers send Origin on a POST, and a page on another site or
    another port of this host has another one."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def viewer(request: Request) -> tuple[Principal, str]:
    """The signed-in principal (a live server-side session whose key still exists) and its forms' token."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise SignIn
    async with engine(request).connect() as conn:
        found = await console_sessions.session_of(conn, token, datetime.now(UTC))
    keys: dict[bytes, Principal] = request.app.state.api_keys
    principal = next((p for p in keys.values() if found is not None and (p.name, p.role) == found), None)
    if principal is None:
        raise SignIn
    request.app.state.rate_limits.hit(request.app.state.rate_limits.requests, principal.name, "requests")
    return principal, sign(request, "csrf", token)


async def read_form_pairs(request: Request, csrf: str) -> list[tuple[str, str]]:
    """A posted form's fields in order, repeated names kept (checkboxes), once its CSRF token and origin
    are checked; the token itself is left out."""
    pairs = parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=False)
    token = next((v for k, v in pairs if k == "csrf"), "")
    if not same_origin(request) or not hmac.compare_digest(token, csrf):
        raise ApiError(403, "csrf", "the form is stale or came from another site; reload the page and try again")
    return [(k, v) for k, v in pairs if k != "csrf"]


async def read_form(request: Request, csrf: str) -> dict[str, str]:
    return dict(await read_form_pairs(request, csrf))


def flash(request: Request) -> dict[str, Any]:
    """The message a redirect after a form carries, shown only when this server signed it (a link from
    elsewhere cannot put its own words under the console's banner)."""
    shown: dict[str, Any] = {"error": None, "note": None}
    for kind in shown:
        text = request.query_params.get(kind)
        signature = request.query_params.get("sig", "")
        if text is not None and hmac.compare_digest(signature, sign(request, f"flash-{kind}", text)):
            shown[kind] = text
    return shown


def engine(request: Request) -> Any:
    return request.app.state.engine


def gateway(request: Request) -> Any:
    return request.app.state.gateway


def back(request: Request, path: str, *, error: str | None = None, note: str | None = None) -> RedirectResponse:
    """Back to a page, with a message the server signs (see ``_flash``)."""
    kind, text = ("error", error) if error else ("note", note)
    query = f"?{kind}={quote(text)}&sig={sign(request, f'flash-{kind}', text)}" if text else ""
    return RedirectResponse(f"{path}{query}", status_code=303)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"
