"""Circuit breaker commands: list them, reset one (an admin's call: it lets traffic through again)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from core.platform import breakers
from core.platform.breakers import BreakerPublic
from core.platform.settings import Settings


async def listing(principal: Principal, engine: AsyncEngine, settings: Settings) -> list[BreakerPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await breakers.listing(conn, settings)


async def reset(target: str, principal: Principal, engine: AsyncEngine) -> None:
    """Close a breaker and forget its failures; 404 for a target with no breaker."""
    allow(principal, doing="reset circuit breakers")
    async with engine.begin() as conn:
        if not await breakers.reset(conn, target):
            raise ApiError(404, "not_found", f"no circuit breaker for '{target}'; GET /api/v1/circuit-breakers")
