"""Process template commands: list the templates (the console's list; the API's route)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from core.platform.contracts import Page
from core.process import templates
from core.process.contracts import TemplateSummary


async def listing(
    principal: Principal,
    engine: AsyncEngine,
    *,
    code: str | None = None,
    industry_sector: str | None = None,
    active: bool | None = None,
    all_versions: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[TemplateSummary]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await templates.list_templates(
            conn,
            code=code,
            industry_sector=industry_sector,
            active=active,
            all_versions=all_versions,
            limit=limit,
            offset=offset,
        )
