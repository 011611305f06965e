"""App factory and lifespan: one engine and one Temporal client per process, never per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry import trace
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import docs
from api.deps import Reader, key_table
from api.errors import ERROR_RESPONSES, ApiError, BodySizeLimit, StorableParameters, install_error_handlers
from api.gateway import Gateway
from api.headers import SecurityHeaders
from api.openapi import install_openapi
from api.ratelimits import RateLimits
from api.routes import (
    analytics,
    breakers,
    changes,
    codec,
    entities,
    events,
    experiments,
    inbox,
    notifications,
    people,
    policies,
)
from api.routes.agents import agents, sessions
from api.routes.automation import dead_letters, rules
from api.routes.process import instances, migrations, templates
from api.routes.steps import executions, step_workflows
from api.routes.work import definitions, queue
from api.ui.common import console_secret
from api.ui.routes import install_console
from core.agents.registry import seed_agents
from core.platform import heap, telemetry
from core.platform.changes import ChangeFeed
from core.platform.codec import AesGcmCodec, parse_keys
from core.platform.database import make_engine
from core.platform.migrate import upgrade_database_async
from core.platform.settings import Settings, get_settings
from core.platform.temporal import connect_client
from core.process.templates import load_packs
from core.steps.acting import check_agent_tools
from core.steps.catalogue import Catalogue
from core.steps.mcp import McpCatalogue
from core.steps.packs import seed_workflows
from core.work.store import seed_definitions

logger = logging.getLogger("trellis.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = key_table(settings)  # fail at start, not per request, on a malformed TRELLIS_API_KEYS
    if not keys:
        logger.warning("TRELLIS_API_KEYS is empty: every request will be refused with 401")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("TRELLIS_DATABASE_URL is not set: start Trellis with `make run`")
        await upgrade_database_async(settings.database_url)
        engine = make_engine(settings.database_url)
        await load_packs(engine)
        await seed_agents(engine)
        async with engine.begin() as conn:
            await seed_definitions(conn)
            await seed_workflows(conn)
        app.state.engine = engine
        app.state.gateway = Gateway(await connect_client(settings), settings)
        app.state.changes = ChangeFeed(settings.database_url)
        heap.settle()
        try:
            yield
        finally:
            await app.state.changes.close()
            await engine.dispose()

    app = FastAPI(
        title="Trellis",
        version="0.1.0",
        description="Durable business processes on Temporal. Authenticate with `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
        # Swagger UI is served from a package (api/docs.py), never from a CDN; ReDoc is not served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.api_keys = keys
    app.state.console_secret = console_secret(settings)
    app.state.rate_limits = RateLimits(settings.rate_limit, settings.rate_limit_session_starts)
    app.state.catalogue = Catalogue(McpCatalogue(settings))
    # The agents' routes check an agent's tools against the one tool registry without importing it (the
    # agents domain imports no other): the check is handed to them here, where the domains are composed.
    app.state.agent_tools_check = check_agent_tools
    app.state.codec = AesGcmCodec(parse_keys(settings.payload_keys)) if settings.payload_keys.strip() else None
    install_error_handlers(app)
    for module in (
        templates,
        instances,
        migrations,
        entities,
        rules,
        notifications,
        dead_letters,
        agents,
        sessions,
        definitions,
        queue,
        inbox,
        step_workflows,
        executions,
        events,
        breakers,
        codec,
        analytics,
        changes,
        policies,
        people,
        experiments,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    install_openapi(app)
    install_console(app)
    app.include_router(docs.router)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        # The errors are JSON (ErrorBody) although the answer is text: say so, or FastAPI files them
        # under the route's text/plain.
        responses={
            status: {
                "description": ERROR_RESPONSES[status]["description"],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            }
            for status in (401, 403, 404)
        },
    )
    async def metrics(_: Reader) -> Response:
        """Prometheus metrics of the API process: the Temporal SDK's client metrics and Trellis's counters
        (inbox items decided here). Needs an API key (Prometheus sends it as a bearer token). The worker
        serves its own, without a key, on TRELLIS_METRICS_BIND (loopback by default)."""
        address = telemetry.metrics_address()
        if address is None:
            raise ApiError(404, "metrics_off", "metrics are off: set TRELLIS_METRICS_BIND (e.g. 127.0.0.1:0)")
        async with httpx.AsyncClient(timeout=5) as http:
            scraped = await http.get(f"http://{address}/metrics")
        return Response(scraped.content, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, str]:
        """The process answers (for a supervisor's liveness probe); says nothing of what it depends on."""
        return {"status": "ok"}

    @app.get("/healthz", tags=["health"], response_model=Health, responses={503: {"model": Health}})
    async def healthz(request: Request) -> JSONResponse:
        """The database and Temporal, each checked now: 200 when both answer, 503 naming what does not."""
        return await _health(request)

    @app.get("/readyz", tags=["health"], response_model=Health, responses={503: {"model": Health}})
    async def readyz(request: Request) -> JSONResponse:
        """Ready to take traffic: the same checks (a load balancer routes only to a 200)."""
        return await _health(request)

    if settings.tracing:
        app.add_middleware(RequestSpans)
    # Our own limiter (not Starlette's) so that a 413 carries the same JSON error shape as every answer.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StorableParameters)
    # The Temporal UI calls the codec endpoint from the browser, on its own origin; no other path answers
    # another origin (the console's cookie pages least of all).
    app.add_middleware(CodecCors, origins=settings.codec_origins())
    app.add_middleware(SecurityHeaders)
    return app


class CodecCors:
    """CORS for ``/codec/*`` only: a page on the Temporal UI's origin may call the codec, and nothing else
    (a cross-origin read of ``/ui`` would carry the signed-in person's cookie and CSRF token)."""

    PREFIX = "/codec/"

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["authorization", "content-type", "x-namespace"],
            allow_credentials=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.PREFIX):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


class RequestSpans:
    """One OpenTelemetry span per HTTP request (TRELLIS_TRACING): the workflow a request starts or
    updates, and that workflow's activities, join its trace through the client's tracing interceptor."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tracer = trace.get_tracer("trellis.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        name = f"{scope['method']} {scope['path']}"
        with self._tracer.start_as_current_span(name, kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self._app(scope, receive, sending)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str
    temporal: str


async def _health(request: Request) -> JSONResponse:
    database = await _database_problem(request.app.state.engine)
    temporal = await request.app.state.gateway.reachable()
    health = Health(
        status="ok" if database is None and temporal is None else "unavailable",
        database=database or "ok",
        temporal=temporal or "ok",
    )
    return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)


async def _database_problem(engine: AsyncEngine) -> str | None:
    """What an anonymous caller may know: whether the database answers. The driver's text (a socket path,
    a host, a port, a user) goes to the API's log only."""
    try:
        async with asyncio.timeout(2), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except TimeoutError:
        return "no answer within 2s"
    except (DBAPIError, OSError) as exc:
        logger.warning(
            "health: the database is unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0]
        )
        return "unavailable (the API's log says why)"
