"""The designer: a page that draws a process template or a step workflow on a canvas and edits it
(api/ui/static/designer.js), and the JSON calls that page makes.

The page's script cannot hold an API key, so it calls these routes with the console's session cookie
and the page's CSRF token in a header (a page on another site can neither read the token nor send the
header: no CORS is offered). Each route calls the same command as the API's route of the same name, so
the server's validators stay the only judge and saving is allowed to admins only."""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ValidationError

from api.commands import steps as step_commands
from api.commands import templates as template_commands
from api.commands.rights import can
from api.commands.validation import ValidationReport
from api.deps import Principal
from api.errors import ApiError, Problem, describe_validation
from api.ui.common import SignIn, engine, gateway, page, same_origin, viewer
from core.process.contracts import TemplateCreate
from core.process.dryrun import TemplateDryRunRequest
from core.steps.definition import WORKFLOW_NAME, StepWorkflowDefinition
from core.steps.dryrun import StepDryRunRequest

router = APIRouter(prefix="/ui", include_in_schema=False)

STATIC = Path(__file__).parent / "static"
DAGRE = STATIC / "vendor" / "dagre-3.1.4"
# The designer's files; each is served as a file so the Content-Security-Policy (script-src 'self') holds.
ASSETS: dict[str, tuple[Path, str]] = {
    "designer.js": (STATIC / "designer.js", "text/javascript"),
    "designer-model.js": (STATIC / "designer-model.js", "text/javascript"),
    "designer.css": (STATIC / "designer.css", "text/css"),
    "dagre.min.js": (DAGRE / "dagre.min.js", "text/javascript"),
}
MAX_DEFINITION_BYTES = 1_000_000
Model = TypeVar("Model", bound=BaseModel)
Version = Annotated[int | None, Query(ge=1, le=1_000_000)]
Compared = Annotated[int, Query(ge=1, le=1_000_000)]


@router.get("/static/designer/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no designer file '{name}'")
    path, media_type = ASSETS[name]
    return FileResponse(path, media_type=media_type)


# --------------------------------------------------------------------------- pages


@router.get("/designer/{kind}/new")
async def new_definition(request: Request, kind: str) -> HTMLResponse:
    return await _page(request, _kind(kind), "")


@router.get("/designer/{kind}/{name}")
async def open_definition(request: Request, kind: str, name: str) -> HTMLResponse:
    return await _page(request, _kind(kind), name[:100])


def _kind(kind: str) -> str:
    if kind not in ("templates", "workflows"):
        raise ApiError(404, "not_found", f"the designer draws templates and workflows, not '{kind}'")
    return kind


async def _page(request: Request, kind: str, name: str) -> HTMLResponse:
    principal, csrf = await viewer(request)
    return page(
        "designer.html",
        principal=principal,
        csrf=csrf,
        kind=kind,
        definition_name=name,
        may_save=can(principal),
        may_start=can(principal, "operator"),
    )


# --------------------------------------------------------------------------- the page's JSON calls


async def _session(request: Request) -> tuple[Principal, str]:
    """The signed-in person and the page's token; a script's call gets a 401 it can show (not the
    sign-in page's HTML)."""
    try:
        return await viewer(request)
    except SignIn:
        raise ApiError(401, "signed_out", "your console session has ended: sign in again in another tab") from None


async def _caller(request: Request) -> Principal:
    principal, _ = await _session(request)
    return principal


async def _writer(request: Request) -> Principal:
    """The caller of a call that changes something: same origin, and the page's CSRF token in the
    X-CSRF-Token header."""
    principal, csrf = await _session(request)
    if not same_origin(request) or not hmac.compare_digest(request.headers.get("x-csrf-token", ""), csrf):
        raise ApiError(403, "csrf", "the page is stale or the call came from another site; reload the designer")
    return principal


async def _body(request: Request, model: type[Model]) -> Model | ValidationReport:
    """The posted definition, or the report of its shape's problems (each at its path, as the API's 422
    names them), so the designer shows a malformed definition's problems on its nodes too."""
    raw = await request.body()
    if len(raw) > MAX_DEFINITION_BYTES:
        raise ApiError(413, "too_large", f"a definition is at most {MAX_DEFINITION_BYTES} bytes")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = [Problem(**p) for p in describe_validation(exc.errors())]
        return ValidationReport(valid=False, problems=problems)


def _invalid(report: ValidationReport) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "; ".join(f"{p.field}: {p.message}" for p in report.problems),
        problems=[p.model_dump() for p in report.problems],
    )


def _json(value: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> JSONResponse:
    if isinstance(value, BaseModel):
        return JSONResponse(value.model_dump(mode="json", by_alias=True), status_code=status)
    if isinstance(value, list):
        return JSONResponse([v.model_dump(mode="json", by_alias=True) for v in value], status_code=status)
    return JSONResponse(value, status_code=status)


# Process templates


@router.post("/designer/api/templates/validate")
async def validate_template(request: Request) -> JSONResponse:
    principal = await _caller(request)
    body = await _body(request, TemplateCreate)
    if isinstance(body, ValidationReport):
        return _json(body)
    return _json(await template_commands.validate(body, principal))


@router.post("/designer/api/templates")
async def save_template(request: Request) -> JSONResponse:
    principal = await _writer(request)
    body = await _body(request, TemplateCreate)
    if isinstance(body, ValidationReport):
        raise _invalid(body)
    return _json(await template_commands.save(body, principal, engine(request)), 201)


@router.get("/designer/api/templates/{code}")
async def get_template(request: Request, code: str, version: Version = None) -> JSONResponse:
    return _json(await template_commands.get(code[:50], version, await _caller(request), engine(request)))


@router.post("/designer/api/templates/{code}/dry-run")
async def dry_run_template(request: Request, code: str) -> JSONResponse:
    """The graph being edited, replayed against the saved version's recorded instances."""
    principal = await _writer(request)
    body = await _body(request, TemplateDryRunRequest)
    if isinstance(body, ValidationReport):
        raise _invalid(body)
    return _json(await template_commands.dry_run(code[:50], body, principal, engine(request)))


@router.get("/designer/api/templates/{code}/versions")
async def template_versions(request: Request, code: str) -> JSONResponse:
    return _json(await template_commands.versions(code[:50], await _caller(request), engine(request)))


@router.get("/designer/api/templates/{code}/diff")
async def template_diff(
    request: Request,
    code: str,
    from_version: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=1_000_000)],
) -> JSONResponse:
    principal = await _caller(request)
    return _json(await template_commands.diff(code[:50], (from_version, to_version), principal, engine(request)))


@router.post("/designer/api/templates/{code}/versions/{version}/restore")
async def restore_template(request: Request, code: str, version: int) -> JSONResponse:
    principal = await _writer(request)
    return _json(await template_commands.restore(code[:50], _version(version), principal, engine(request)), 201)


# Step workflows


def _name(name: str) -> str:
    if not re.fullmatch(WORKFLOW_NAME, name):
        raise ApiError(404, "not_found", f"no step workflow '{name[:100]}'")
    return name


def _version(version: int) -> int:
    if not 1 <= version <= 1_000_000:
        raise ApiError(404, "not_found", f"no version {version}")
    return version


@router.get("/designer/api/workflows/schema")
async def workflow_schema(request: Request) -> JSONResponse:
    principal = await _caller(request)
    return _json(await step_commands.schema(principal, request.app.state.catalogue))


@router.post("/designer/api/workflows/validate")
async def validate_workflow(request: Request) -> JSONResponse:
    principal = await _caller(request)
    body = await _body(request, StepWorkflowDefinition)
    if isinstance(body, ValidationReport):
        return _json(body)
    settings = request.app.state.settings
    return _json(await step_commands.validate(body, principal, request.app.state.catalogue, settings))


@router.post("/designer/api/workflows")
async def save_workflow(request: Request) -> JSONResponse:
    """Version 1 of a new workflow, or a new version of an existing one (``new`` says which the author
    meant, so a name another admin took meanwhile is a 409, not a silent new version of theirs)."""
    principal = await _writer(request)
    body = await _body(request, StepWorkflowDefinition)
    if isinstance(body, ValidationReport):
        raise _invalid(body)
    catalogue, settings = request.app.state.catalogue, request.app.state.settings
    if request.query_params.get("new") == "true":
        saved = await step_commands.create(body, principal, engine(request), catalogue, settings)
    else:
        saved = await step_commands.replace(body.name, body, principal, engine(request), catalogue, settings)
    return _json(saved, 201)


@router.post("/designer/api/workflows/{name}/dry-run")
async def dry_run_workflow(request: Request, name: str) -> JSONResponse:
    """The definition being edited, run in shadow against the saved version's recorded runs."""
    principal = await _writer(request)
    body = await _body(request, StepDryRunRequest)
    if isinstance(body, ValidationReport):
        raise _invalid(body)
    settings, catalogue = request.app.state.settings, request.app.state.catalogue
    found = await step_commands.dry_run(
        _name(name), body, principal, engine(request), gateway(request), catalogue, settings
    )
    return _json(found)


@router.get("/designer/api/workflows/{name}")
async def get_workflow(request: Request, name: str, version: Version = None) -> JSONResponse:
    return _json(await step_commands.workflow(_name(name), await _caller(request), engine(request), version))


@router.get("/designer/api/workflows/{name}/versions")
async def workflow_versions(request: Request, name: str) -> JSONResponse:
    return _json(await step_commands.versions(_name(name), await _caller(request), engine(request)))


@router.get("/designer/api/workflows/{name}/diff")
async def workflow_diff(
    request: Request,
    name: str,
    from_version: Annotated[Compared, Query(alias="from")],
    to_version: Annotated[Compared, Query(alias="to")],
) -> JSONResponse:
    principal = await _caller(request)
    return _json(await step_commands.diff(_name(name), (from_version, to_version), principal, engine(request)))


@router.post("/designer/api/workflows/{name}/versions/{version}/restore")
async def restore_workflow(request: Request, name: str, version: int) -> JSONResponse:
    principal = await _writer(request)
    catalogue, settings = request.app.state.catalogue, request.app.state.settings
    restored = await step_commands.restore(
        _name(name), _version(version), principal, engine(request), catalogue, settings
    )
    return _json(restored, 201)
