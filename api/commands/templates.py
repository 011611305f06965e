"""Process template commands: list and read templates, validate one without storing it (the designer),
save a new version, compare and restore versions."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands.rights import READERS, allow
from api.commands.validation import ValidationReport
from api.deps import Principal
from api.errors import ApiError, Problem
from core.platform.contracts import Page
from core.platform.diffs import GraphDiff, template_diff
from core.process import instances, templates
from core.process.contracts import (
    HistoryEntry,
    TemplateCreate,
    TemplatePublic,
    TemplateSummary,
    TemplateVersion,
    WorkflowGraph,
)
from core.process.dag import TemplateError, validate_graph
from core.process.dryrun import TemplateDryRun, TemplateDryRunRequest, replay, summary


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


async def validate(template: TemplateCreate, principal: Principal) -> ValidationReport:
    """A process template checked by the DAG rules, as saving it would check it, and not stored (its
    shape was checked on the way in: a malformed one is a 422 with each field's path). Anyone signed in
    may ask: the designer shows the answer to read-only viewers too."""
    allow(principal, *READERS)
    try:
        validate_graph(template.workflow_graph)
    except TemplateError as exc:
        ids = [s.id for s in template.workflow_graph.states]
        where = f"workflow_graph.states[{ids.index(exc.state_id)}]" if exc.state_id in ids else "workflow_graph"
        return ValidationReport(valid=False, problems=[Problem(field=where, message=f"{exc.message} ({exc.rule})")])
    return ValidationReport(valid=True, problems=[])


async def get(reference: str, version: int | None, principal: Principal, engine: AsyncEngine) -> TemplatePublic:
    """A template by id (that version) or by code (its latest version, or ``version``)."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        try:
            found = await templates.get_by_id(conn, uuid.UUID(reference))
        except ValueError:
            found = await templates.get_by_code(conn, reference, version)
    if found is None:
        raise ApiError(404, "not_found", f"no template with id or code '{reference}'")
    return found


def checked(graph: WorkflowGraph) -> None:
    """The 422 of a graph the DAG rules refuse (saving it, or dry-running it), naming the rule and state."""
    try:
        validate_graph(graph)
    except TemplateError as exc:
        raise ApiError(422, "invalid_template", exc.message, rule=exc.rule, state_id=exc.state_id) from exc


async def save(template: TemplateCreate, principal: Principal, engine: AsyncEngine) -> TemplatePublic:
    """Validate and store a template: an existing code gets a new version (running instances keep
    theirs)."""
    allow(principal, doing="save process templates")
    checked(template.workflow_graph)
    async with engine.begin() as conn:
        stored, _ = await templates.create_version(conn, template, created_by=principal.name)
    return stored


async def dry_run(code: str, body: TemplateDryRunRequest, principal: Principal, engine: AsyncEngine) -> TemplateDryRun:
    """Replay the latest version's recent instances on a changed graph (core/process/dryrun.py): which
    would now be refused and where, and which would end differently. Nothing is stored or changed."""
    allow(principal, doing="dry-run process templates")
    checked(body.workflow_graph)
    async with engine.connect() as conn:
        current = await templates.latest_version(conn, code)
        if current is None:
            raise ApiError(404, "not_found", f"no process template '{code}'")
        recorded = await instances.recent_of_version(conn, code, current.version, body.last_n)
    replayed = [
        replay(
            str(row.id),
            [HistoryEntry.model_validate(h) for h in row.state_history],
            row.workflow_status,
            row.success_flag,
            body.workflow_graph,
        )
        for row in recorded
    ]
    return summary(code, current.version, replayed)


async def versions(code: str, principal: Principal, engine: AsyncEngine) -> list[TemplateVersion]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        found = await templates.versions(conn, code)
    if not found:
        raise ApiError(404, "not_found", f"no process template '{code}'")
    return found


async def diff(code: str, versions_: tuple[int, int], principal: Principal, engine: AsyncEngine) -> GraphDiff:
    """What changed from one version of a template to another: states and transitions added, removed,
    changed."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        graphs = [await templates.get_by_code(conn, code, v) for v in versions_]
    for version, graph in zip(versions_, graphs, strict=True):
        if graph is None or graph.version != version:
            raise ApiError(404, "not_found", f"process template '{code}' has no version {version}")
    a, b = (g.workflow_graph.model_dump(mode="json") for g in graphs if g is not None)
    return template_diff(a, b, versions_)


async def restore(code: str, version: int, principal: Principal, engine: AsyncEngine) -> TemplatePublic:
    """Store an earlier version again as the newest one (checked by today's rules first). Running
    instances keep the versions they started on."""
    allow(principal, doing="restore template versions")
    async with engine.connect() as conn:
        found = await templates.get_by_code(conn, code, version)
    if found is None or found.version != version:
        raise ApiError(404, "not_found", f"process template '{code}' has no version {version}")
    again = TemplateCreate(
        code=found.code,
        name=found.name,
        industry_sector=found.industry_sector,
        workflow_graph=found.workflow_graph,
        default_workflow_flag=found.default_workflow_flag,
    )
    try:
        validate_graph(again.workflow_graph)
    except TemplateError as exc:
        raise ApiError(422, "invalid_template", f"version {version} breaks a rule now: {exc.message}") from exc
    async with engine.begin() as conn:
        stored, _ = await templates.create_version(conn, again, created_by=principal.name)
    return stored
