"""Circuit breakers of the call targets of step tools (core/platform/breakers.py): read them, and
reset one by hand (an admin who knows the target is healthy again)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from api.deps import Admin, EngineDep, Reader, SettingsDep
from api.errors import ApiError
from core.platform import breakers
from core.platform.breakers import BreakerPublic
from core.platform.contracts import RequestModel

router = APIRouter(prefix="/api/v1/circuit-breakers", tags=["circuit breakers"])


class ResetRequest(RequestModel):
    target: str = Field(
        min_length=3,
        max_length=500,
        description="A breaker's target as listed: http:<origin>, agent:<name>, mcp:<server>",
    )


@router.get("", response_model=list[BreakerPublic])
async def list_breakers(engine: EngineDep, settings: SettingsDep, _: Reader) -> list[BreakerPublic]:
    """Every target that has failed since it was last healthy (a target never listed is closed)."""
    async with engine.connect() as conn:
        return await breakers.listing(conn, settings)


@router.post("/reset", status_code=204)
async def reset_breaker(body: ResetRequest, engine: EngineDep, _: Admin) -> None:
    """Close a breaker and forget its failures; 404 for a target with no breaker."""
    async with engine.begin() as conn:
        if not await breakers.reset(conn, body.target):
            raise ApiError(404, "not_found", f"no circuit breaker for '{body.target}'; GET /api/v1/circuit-breakers")
