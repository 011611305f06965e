"""Circuit breakers of the call targets of step tools (core/platform/breakers.py): read them, and
reset one by hand (an admin who knows the target is healthy again)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from api.commands import breakers as commands
from api.deps import Admin, EngineDep, Reader, SettingsDep
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
async def list_breakers(engine: EngineDep, settings: SettingsDep, principal: Reader) -> list[BreakerPublic]:
    """Every target that has failed since it was last healthy (a target never listed is closed)."""
    return await commands.listing(principal, engine, settings)


@router.post("/reset", status_code=204)
async def reset_breaker(body: ResetRequest, engine: EngineDep, principal: Admin) -> None:
    """Close a breaker and forget its failures; 404 for a target with no breaker."""
    await commands.reset(body.target, principal, engine)
