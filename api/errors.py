"""Error answers: every failure a client can cause gets a 4xx with a message a person can act on.

Body: ``{"error": "<code>", "detail": "<message>", ...extra}``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.entities.contracts import EntityTooLarge
from core.platform import errors
from core.platform.contracts import field_path
from core.platform.database import is_data_error, is_too_large, is_unavailable
from core.platform.pages import CursorInvalid

logger = logging.getLogger("trellis.api")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra


class Problem(BaseModel):
    field: str = Field(description="Where, e.g. actions[0].call_webhook.url")
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a code to branch on, a sentence a person can act on, and details by case
    (``problems`` for 422 validation errors, ``allowed_next_states`` for a refused transition, …)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Machine-readable code, e.g. invalid_transition")
    detail: str = Field(description="What happened and what to do")
    problems: list[Problem] | None = Field(default=None, description="422: each invalid field")


_ANSWERS = {
    400: "The body is not JSON at all",
    401: "No API key, or an unknown one",
    403: "The key's role, or the object's owner, does not allow this",
    404: "No such object",
    409: "The object's state does not allow this now (the detail says why and what is allowed)",
    413: "The body, or the entity it would make, is over a size limit (named in the detail)",
    422: "The request is invalid: each problem named with its field",
    429: "Over a rate or budget limit of the API key; Retry-After says when to retry",
    500: "An error no retry can fix",
    503: "The database or Temporal did not answer; the detail says whether anything may still be applied",
    504: "No worker answered in time; the request may still be applied (read before retrying)",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _ANSWERS.items()
}


def error_body(error: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **extra}


def location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """Where a request's problem is, without the leading ``body``: ``steps[1].tool``."""
    parts = list(loc)[1:] if loc and loc[0] == "body" else list(loc)
    return field_path(parts) or "body"


def describe_validation(errors: list[dict[str, Any]] | Any) -> list[dict[str, str]]:
    problems = []
    for err in errors:
        where = location(tuple(err.get("loc", ())))
        message = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            message = "unknown field (not part of this request)"
        elif err.get("type") == "json_invalid":
            message = f"request body is not valid JSON: {err.get('ctx', {}).get('error', message)}"
        elif where == "query.offset" and err.get("type") == "less_than_equal":
            message += "; for deeper pages pass the previous page's next_cursor as cursor"
        problems.append({"field": where, "message": message})
    return problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.error, exc.detail, **exc.extra), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = describe_validation(exc.errors())
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse(error_body("validation_error", detail, problems=problems), status_code=422)

    @app.exception_handler(CursorInvalid)
    async def _cursor(_: Request, exc: CursorInvalid) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_cursor", str(exc), problems=[{"field": "cursor", "message": str(exc)}]), 422
        )

    @app.exception_handler(EntityTooLarge)
    async def _too_large(_: Request, exc: EntityTooLarge) -> JSONResponse:
        return JSONResponse(
            error_body(errors.ENTITY_TOO_LARGE.code, str(exc)), status_code=errors.ENTITY_TOO_LARGE.status
        )

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if is_data_error(exc):
            # Input Postgres refuses (e.g. a NUL character in a query parameter) is the caller's to fix.
            reason = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
            return JSONResponse(error_body("invalid_value", f"a value in the request cannot be used: {reason}"), 422)
        if is_too_large(exc):
            reason = str(exc.orig).splitlines()[0] if exc.orig else "too large"
            return JSONResponse(error_body("too_large", f"the database cannot store this: {reason}"), 413)
        if is_unavailable(exc):
            # Only a connection that failed is worth retrying; say so, and nothing else.
            return JSONResponse(error_body("database_unavailable", "the database did not answer; retry later"), 503)
        logger.exception("database error")
        return JSONResponse(
            error_body("internal_error", "the database refused the request; retrying will not help, tell the admins"),
            500,
        )

    @app.exception_handler(ConnectionError)
    @app.exception_handler(FileNotFoundError)
    async def _unreachable(_: Request, exc: OSError) -> JSONResponse:
        # A database restarting removes its socket for a moment: unavailable, not an internal error.
        logger.warning("a connection failed: %s", exc)
        return JSONResponse(error_body("database_unavailable", "the database did not answer; retry later"), 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "invalid_body",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Every method the path allows, across all its routes (Starlette names only the first match's).
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers or None,
        )


def _allowed_methods(request: Request) -> list[str]:
    """The methods a route answers on the request's path, matched as the router matches (path convertors
    included: /workflows/schema is not a /workflows/{name})."""
    allowed = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


class BodySizeLimit:
    """Reject request bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", f"request body is larger than the limit of {self.max_bytes} bytes"),
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class StorableParameters:
    """Refuse a NUL character in the path or a query parameter with 422, the rule every request body
    follows (``check_storable``) and the OpenAPI states, before any route or the database sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in(scope)
            if where is not None:
                detail = f"{where}: text must not contain NUL (\\u0000) characters"
                body = error_body("validation_error", detail, problems=[{"field": where, "message": detail}])
                await JSONResponse(body, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"query.{name.replace(chr(0), '')}"
    return None
