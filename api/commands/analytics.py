"""Analytics reads shared by the API's analytics routes and the console's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from core.agents.analytics import AgentsAnalytics, agents_analytics
from core.platform.recommendations import Recommendations
from core.platform.settings import Settings
from core.process import recommendations, templates
from core.process.analytics import TemplateAnalytics, state_figures, template_analytics
from core.process.contracts import TemplatePublic


def check_window(from_ts: datetime | None, to_ts: datetime | None) -> None:
    if from_ts is not None and to_ts is not None and from_ts >= to_ts:
        raise ApiError(422, "validation_error", "from must be before to")


async def template_figures(
    code: str,
    principal: Principal,
    engine: AsyncEngine,
    *,
    version: int | None = None,
    from_ts: datetime | None = None,
    to_ts: datetime | None = None,
    top: int = 10,
) -> tuple[TemplatePublic, TemplateAnalytics]:
    """The template version (404 when there is none) and its figures."""
    allow(principal, *READERS)
    check_window(from_ts, to_ts)
    async with engine.connect() as conn:
        template = await templates.get_by_code(conn, code, version)
    if template is None:
        what = f"version {version} of template {code}" if version else f"template {code}"
        raise ApiError(404, "not_found", f"no {what}")
    figures = await template_analytics(
        engine,
        code,
        template.workflow_graph,
        version=version,
        from_ts=from_ts,
        to_ts=to_ts,
        now=datetime.now(UTC),
        top=top,
    )
    return template, figures


async def template_recommendations(
    code: str, principal: Principal, engine: AsyncEngine, *, version: int | None = None
) -> Recommendations:
    """Seed 004's optimizer for a template version (default the latest), over all its instances: states
    over their expected time, transitions never taken, states rarely reached."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        template = await templates.get_by_code(conn, code, version)
        if template is None:
            what = f"version {version} of template {code}" if version else f"template {code}"
            raise ApiError(404, "not_found", f"no {what}")
        graph = template.workflow_graph
        params = {"code": code, "version": template.version, "from_ts": None, "to_ts": None}
        states = await state_figures(conn, params, {s.id: s for s in graph.states})
        taken, reached, started = await recommendations.recorded(conn, code, template.version)
    items, notes = recommendations.recommend(graph, states, taken, reached, started)
    return Recommendations(
        subject=code,
        version=template.version,
        basis=f"{started} instances of v{template.version}",
        items=items,
        notes=notes,
    )


async def agent_figures(
    principal: Principal,
    engine: AsyncEngine,
    settings: Settings,
    *,
    from_ts: datetime | None = None,
    to_ts: datetime | None = None,
    session_id: str | None = None,
    agent: str | None = None,
    top: int = 50,
) -> AgentsAnalytics:
    """Agent calls made in the window: per agent and model, per day and per session."""
    allow(principal, *READERS)
    check_window(from_ts, to_ts)
    return await agents_analytics(
        engine,
        priced_models=set(settings.llm_prices),
        from_ts=from_ts,
        to_ts=to_ts,
        session_id=session_id,
        agent=agent,
        top=top,
    )
