"""Template storage: validated, versioned DAG templates and the industry packs shipped as data."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Float, Integer, Numeric, bindparam, cast, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.platform import direct
from core.platform.contracts import Page
from core.platform.paths import PACKS_DIR
from core.process.contracts import (
    TemplateCreate,
    TemplatePublic,
    TemplateSnapshot,
    TemplateSummary,
    TemplateVersion,
)
from core.process.dag import validate_graph
from core.process.tables import GraphData, GraphHead

logger = logging.getLogger(__name__)

PROCESS_PACKS = PACKS_DIR / "process"
_TEMPLATE_LOCK_ID = 7_346_002  # pg_advisory_xact_lock key: one version number per code at a time


def read_packs(folder: Path = PROCESS_PACKS) -> list[TemplateCreate]:
    """Parse and validate every pack file; a broken pack stops start-up with its file name."""
    packs: list[TemplateCreate] = []
    for path in sorted(folder.glob("*.json")):
        try:
            pack = TemplateCreate.model_validate(json.loads(path.read_text()))
            validate_graph(pack.workflow_graph)
        except Exception as exc:
            raise ValueError(f"industry pack {path.name} is invalid: {exc}") from exc
        packs.append(pack)
    return packs


def snapshot(template: TemplatePublic) -> TemplateSnapshot:
    return TemplateSnapshot(
        head_id=str(template.id),
        code=template.code,
        version=template.version,
        name=template.name,
        industry_sector=template.industry_sector,
        graph=template.workflow_graph,
    )


async def create_version(
    conn: AsyncConnection, template: TemplateCreate, *, created_by: str, only_if_changed: bool = False
) -> tuple[TemplatePublic, bool]:
    """Store ``template`` as the next version of its code. Validation must already have passed.

    With ``only_if_changed`` an identical latest version is returned instead (pack loading).
    Returns the stored version and whether a new row was written.
    """
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _TEMPLATE_LOCK_ID})
    latest = await latest_version(conn, template.code)
    graph = template.workflow_graph.model_dump(mode="json", exclude_none=True)
    if only_if_changed and latest is not None:
        same = (
            latest.workflow_graph.model_dump(mode="json", exclude_none=True) == graph
            and latest.name == template.name
            and latest.industry_sector == template.industry_sector
        )
        if same:
            return latest, False
    result = await conn.execute(
        insert(GraphHead)
        .values(
            id=uuid.uuid4(),
            code=template.code,
            version=(latest.version + 1) if latest else 1,
            name=template.name,
            industry_sector=template.industry_sector,
            workflow_graph=graph,
            default_workflow_flag=template.default_workflow_flag,
            avg_duration_days=template.avg_duration_days,
            created_by=created_by,
        )
        .returning(*GraphHead.__table__.columns)
    )
    return TemplatePublic.model_validate(result.one()), True


# Every finished instance folded into its template version at once, with the figures count_finish
# keeps one finish at a time: for rows written in bulk (make seed-scale). Migration 0013 back-filled
# the instances finished before the counters existed with the same statement, frozen in the migration.
RECOUNT_FINISHES = """
    UPDATE app.d_industry_workflow_graph_head AS h
    SET finished_count = s.n, succeeded_count = s.ok, duration_seconds_total = s.seconds,
        success_rate_pct = round(100.0 * s.ok / s.n, 2),
        avg_duration_days = round((s.seconds / s.n / 86400)::numeric, 3)
    FROM (
        SELECT workflow_head_id, count(*) AS n, count(*) FILTER (WHERE success_flag) AS ok,
               coalesce(sum(greatest(extract(epoch FROM completed_ts - started_ts), 0)), 0) AS seconds
        FROM app.d_industry_workflow_graph_data
        WHERE workflow_status <> 'active' AND completed_ts IS NOT NULL
        GROUP BY workflow_head_id
    ) AS s
    WHERE h.id = s.workflow_head_id
"""


async def count_finish(
    conn: AsyncConnection, head_id: uuid.UUID, *, started: datetime, finished: datetime, success: bool
) -> None:
    """Fold one finished instance into its template version's success rate and mean duration. The
    caller runs it in the transaction that records the finish, and only when that transaction is the
    one that wrote it (a retried write finds the finish recorded and does not call it again): each
    finish is counted exactly once. The right-hand sides read the row before this update. Nothing is
    read back, so in a state entry's pipeline it travels with the entry's last statements."""
    seconds = max((finished - started).total_seconds(), 0.0)
    row = {"head_id": head_id, "succeeded": 1 if success else 0, "seconds": seconds}
    await direct.send(conn, _count_finish_statement(), [row])


@functools.cache
def _count_finish_statement() -> Any:
    """``count_finish``'s update, built once (its values are parameters)."""
    finished_count = GraphHead.finished_count + 1
    succeeded_count = GraphHead.succeeded_count + bindparam("succeeded", type_=Integer)
    total = GraphHead.duration_seconds_total + bindparam("seconds", type_=Float)
    return (
        update(GraphHead)
        .where(GraphHead.id == bindparam("head_id"))
        .values(
            finished_count=finished_count,
            succeeded_count=succeeded_count,
            duration_seconds_total=total,
            success_rate_pct=func.round(cast(succeeded_count, Numeric) * 100 / finished_count, 2),
            avg_duration_days=func.round(cast(total / finished_count / 86400.0, Numeric), 3),
        )
    )


async def latest_version(conn: AsyncConnection, code: str) -> TemplatePublic | None:
    return await get_by_code(conn, code, None)


async def get_by_id(conn: AsyncConnection, head_id: uuid.UUID) -> TemplatePublic | None:
    row = (await conn.execute(select(GraphHead.__table__).where(GraphHead.id == head_id))).first()
    return TemplatePublic.model_validate(row) if row else None


async def get_by_code(conn: AsyncConnection, code: str, version: int | None) -> TemplatePublic | None:
    stmt = select(GraphHead.__table__).where(GraphHead.code == code)
    stmt = stmt.where(GraphHead.version == version) if version is not None else stmt
    row = (await conn.execute(stmt.order_by(GraphHead.version.desc()).limit(1))).first()
    return TemplatePublic.model_validate(row) if row else None


async def versions(conn: AsyncConnection, code: str) -> list[TemplateVersion]:
    """Every version of a template, oldest first, with its running instances (what a change would meet)."""
    running = (
        select(GraphData.workflow_head_id, func.count().label("running"))
        .where(GraphData.template_code == code, GraphData.workflow_status == "active")
        .group_by(GraphData.workflow_head_id)
        .subquery()
    )
    stmt = (
        select(
            GraphHead.version,
            GraphHead.name,
            GraphHead.active_workflow_flag,
            GraphHead.created_by,
            GraphHead.created_ts,
            func.jsonb_array_length(GraphHead.workflow_graph["states"]).label("state_count"),
            func.coalesce(running.c.running, 0).label("running"),
        )
        .outerjoin(running, running.c.workflow_head_id == GraphHead.id)
        .where(GraphHead.code == code)
        .order_by(GraphHead.version)
    )
    return [TemplateVersion.model_validate(r._mapping) for r in (await conn.execute(stmt)).all()]


async def list_templates(
    conn: AsyncConnection,
    *,
    code: str | None,
    industry_sector: str | None,
    active: bool | None,
    all_versions: bool,
    limit: int,
    offset: int,
) -> Page[TemplateSummary]:
    state_count = func.jsonb_array_length(GraphHead.workflow_graph["states"]).label("state_count")
    stmt = select(*GraphHead.__table__.columns, state_count)
    if not all_versions:
        latest = select(GraphHead.code, func.max(GraphHead.version).label("v")).group_by(GraphHead.code).subquery()
        stmt = stmt.join(latest, (GraphHead.code == latest.c.code) & (GraphHead.version == latest.c.v))
    if code is not None:
        stmt = stmt.where(GraphHead.code == code)
    if industry_sector is not None:
        stmt = stmt.where(GraphHead.industry_sector == industry_sector)
    if active is not None:
        stmt = stmt.where(GraphHead.active_workflow_flag == active)
    total = (await conn.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        await conn.execute(stmt.order_by(GraphHead.code, GraphHead.version.desc()).limit(limit).offset(offset))
    ).all()
    items = [TemplateSummary.model_validate(r) for r in rows]
    return Page(items=items, total=int(total), limit=limit, offset=offset)


async def load_packs(engine: AsyncEngine) -> list[TemplatePublic]:
    """Store each pack as a template version unless its latest version is identical."""
    stored: list[TemplatePublic] = []
    for pack in read_packs():
        async with engine.begin() as conn:
            template, created = await create_version(conn, pack, created_by="industry-pack", only_if_changed=True)
        if created:
            logger.info("loaded industry pack %s as version %s", template.code, template.version)
        stored.append(template)
    return stored


async def active_codes(conn: AsyncConnection) -> list[str]:
    """Codes of the active templates, for an error message that says what exists."""
    stmt = select(GraphHead.code).where(GraphHead.active_workflow_flag.is_(True)).distinct().order_by(GraphHead.code)
    return list((await conn.execute(stmt)).scalars())
