"""Industry workflow templates: list, read, create (a new version per code)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.convertors import Convertor, register_url_convertor

from api.commands import templates as template_commands
from api.commands.validation import ValidationReport
from api.deps import Admin, EngineDep, Reader
from api.pagination import Limit, Offset
from core.platform.contracts import Page
from core.platform.diffs import GraphDiff
from core.process.contracts import TemplateCreate, TemplatePublic, TemplateSummary, TemplateVersion
from core.process.dryrun import TemplateDryRun, TemplateDryRunRequest


class TemplateRefConvertor(Convertor[str]):
    """A template id or code in a path: never "validate" (codes are upper case), so
    /workflow-template/validate matches only its own route (and its 405 answers list only POST)."""

    regex = "(?!validate/?$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("template_ref", TemplateRefConvertor())

router = APIRouter(prefix="/api/v1/workflow-template", tags=["templates"])


@router.post("/validate", response_model=ValidationReport)
async def validate_template(body: TemplateCreate, principal: Reader) -> ValidationReport:
    """Check a template as saving it would and store nothing: a malformed body is a 422 with each
    field's path; a well-formed one is 200 with ``valid`` and, for a broken DAG rule, the state it
    concerns (``workflow_graph.states[4]``). Declared before ``/{template_ref}`` so that path is this."""
    return await template_commands.validate(body, principal)


@router.get("", response_model=Page[TemplateSummary])
async def list_templates(
    engine: EngineDep,
    principal: Reader,
    code: str | None = None,
    industry_sector: str | None = None,
    active: bool | None = None,
    all_versions: Annotated[bool, Query(description="List every version, not only the latest")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TemplateSummary]:
    return await template_commands.listing(
        principal,
        engine,
        code=code,
        industry_sector=industry_sector,
        active=active,
        all_versions=all_versions,
        limit=limit,
        offset=offset,
    )


@router.get("/{template_ref:template_ref}", response_model=TemplatePublic)
async def get_template(
    template_ref: str,
    engine: EngineDep,
    principal: Reader,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="With a code: that version")] = None,
) -> TemplatePublic:
    """``template_ref`` is a template id (one version) or a code (its latest version, or ``version``)."""
    return await template_commands.get(template_ref, version, principal, engine)


@router.post("", response_model=TemplatePublic, status_code=201)
async def create_template(body: TemplateCreate, engine: EngineDep, principal: Admin) -> TemplatePublic:
    """Validate and store a template; an existing code gets a new version (running instances keep theirs)."""
    return await template_commands.save(body, principal, engine)


@router.get("/{code}/versions", response_model=list[TemplateVersion])
async def list_template_versions(code: str, engine: EngineDep, principal: Reader) -> list[TemplateVersion]:
    """Every version of a template, oldest first, each with the instances still running on it."""
    return await template_commands.versions(code[:50], principal, engine)


@router.post("/{code}/dry-run", response_model=TemplateDryRun)
async def dry_run_template(
    code: str, body: TemplateDryRunRequest, engine: EngineDep, principal: Admin
) -> TemplateDryRun:
    """Replay the latest version's ``last_n`` most recent instances on a changed graph, before saving it:
    which would now be refused and where, and which would end differently. Nothing is stored or changed."""
    return await template_commands.dry_run(code[:50], body, principal, engine)


@router.get("/{code}/diff", response_model=GraphDiff)
async def diff_template_versions(
    code: str,
    engine: EngineDep,
    principal: Reader,
    from_version: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=1_000_000)],
) -> GraphDiff:
    """States (by id) and transitions added, removed and changed from one version to another."""
    return await template_commands.diff(code[:50], (from_version, to_version), principal, engine)


@router.post("/{code}/versions/{version}/restore", response_model=TemplatePublic, status_code=201)
async def restore_template_version(
    code: str, version: Annotated[int, Path(ge=1, le=1_000_000)], engine: EngineDep, principal: Admin
) -> TemplatePublic:
    """Store version ``version`` again as the newest version (today's rules checked first)."""
    return await template_commands.restore(code[:50], version, principal, engine)
