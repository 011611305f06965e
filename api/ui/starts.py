"""Starting work from the console: a process instance of a template (its root customer named in a
form), and an execution of a step workflow from a form generated from what the definition reads of
its input (every ``${input.…}`` reference). Both go through the commands the API's routes call."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.commands import instances as instance_commands
from api.commands import steps as step_commands
from api.commands import templates as template_commands
from api.commands.rights import can
from api.errors import ApiError
from api.ui.common import back, engine, flash, gateway, page, read_form, viewer
from core.process.contracts import EntityInput, InstanceCreate
from core.steps.contracts import ExecuteRequest
from core.steps.definition import StepWorkflowDefinition
from core.steps.references import references

router = APIRouter(prefix="/ui", include_in_schema=False)
MAX_FIELDS = 30


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'form'}: {first['msg']}"


def _value(text: str) -> Any:
    """A field as typed: JSON when it reads as JSON (a number, true, a list, an object), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- process instances


@router.get("/instances/new")
async def new_instance(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    found = await template_commands.listing(principal, engine(request), active=True, limit=200)
    return page(
        "start_instance.html",
        principal=principal,
        csrf=csrf,
        templates=found.items,
        chosen=request.query_params.get("template", "")[:50],
        may_start=can(principal, "operator"),
        **flash(request),
    )


@router.post("/instances/new")
async def start_instance(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = "/ui/instances/new"
    try:
        fields = json.loads(form.get("fields") or "{}")
        if not isinstance(fields, dict):
            return back(request, here, error='Fields: a JSON object, e.g. {"email": "jane@example.com"}.')
        body = InstanceCreate(
            template_code=form.get("template_code", ""),
            entity=EntityInput(name=form.get("name", ""), fields=fields) if form.get("name") else None,
        )
        view = await instance_commands.start(
            body, principal, engine(request), gateway(request), request.app.state.settings
        )
    except json.JSONDecodeError as exc:
        return back(request, here, error=f"Fields: not JSON ({exc.msg} at character {exc.pos}).")
    except ValidationError as exc:
        return back(request, here, error=_problem(exc))
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, f"/ui/instances/{view.instance_id}", note=f"Started in {view.current_state.name}.")


# --------------------------------------------------------------------------- step workflows


def input_fields(definition: dict[str, Any]) -> list[str]:
    """The input keys a definition reads (``${input.quote_id}`` → ``quote_id``), in order of use."""
    found: list[str] = []
    for reference in references(definition):
        parts = reference.split(".")
        if parts[0] == "input" and len(parts) > 1:
            key = parts[1].split("[")[0]
            if key and key not in found:
                found.append(key)
    return found[:MAX_FIELDS]


@router.get("/workflows/{name}")
async def workflow_page(request: Request, name: str) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        stored = await step_commands.workflow(name[:100], principal, engine(request))
        history = await step_commands.versions(stored.name, principal, engine(request))
        advice = await step_commands.recommendations(stored.name, principal, engine(request))
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    return page(
        "workflow.html",
        principal=principal,
        csrf=csrf,
        workflow=stored,
        fields=input_fields(stored.definition),
        versions=history,
        steps=[(step.name, step.kind) for step in StepWorkflowDefinition.model_validate(stored.definition).steps],
        definition_json=json.dumps(stored.definition, indent=2)[:20000],
        may_execute=can(principal, "operator") and stored.enabled,
        advice=advice,
        **flash(request),
    )


@router.post("/workflows/{name}/execute")
async def execute_workflow(request: Request, name: str) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = f"/ui/workflows/{name[:100]}"
    values = {k.removeprefix("input."): _value(v) for k, v in form.items() if k.startswith("input.")}
    try:
        extra = json.loads(form.get("more") or "{}")
        if not isinstance(extra, dict):
            return back(request, here, error="More input: a JSON object.")
        body = ExecuteRequest(input={**extra, **values})
        started = await step_commands.execute(
            name[:100], body, principal, engine(request), gateway(request), request.app.state.settings
        )
    except json.JSONDecodeError as exc:
        return back(request, here, error=f"More input: not JSON ({exc.msg} at character {exc.pos}).")
    except ValidationError as exc:
        return back(request, here, error=_problem(exc))
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, f"/ui/executions/{started.id}", note="Started.")
