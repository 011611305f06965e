"""App factory and lifespan: one engine and one Temporal client per process, never per request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import key_table
from api.errors import BodySizeLimit, install_error_handlers
from api.gateway import Gateway
from api.ratelimits import RateLimits
from api.routes import entities, notifications
from api.routes.agents import agents, sessions
from api.routes.automation import dead_letters, rules
from api.routes.process import instances, templates
from core.agents.registry import seed_agents
from core.platform.database import make_engine
from core.platform.migrate import upgrade_database_async
from core.platform.settings import Settings, get_settings
from core.platform.temporal import connect_client
from core.process.templates import load_packs

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
        app.state.engine = engine
        app.state.gateway = Gateway(await connect_client(settings), settings)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Trellis",
        version="0.1.0",
        description="Durable business processes on Temporal. Authenticate with `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = keys
    app.state.rate_limits = RateLimits(settings.rate_limit, settings.rate_limit_session_starts)
    install_error_handlers(app)
    for module in (templates, instances, entities, rules, notifications, dead_letters, agents, sessions):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Our own limiter (not Starlette's) so that a 413 carries the same JSON error shape as every answer.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
