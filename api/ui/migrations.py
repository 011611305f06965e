"""Migrations in the console (admins): plan one (template, versions, rules, states, mapping), preview
what it would do to each instance, start it, and follow it. The page posts to the commands the API's
routes call (api/commands/migrations.py); the rules are core/process/migration.py's."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.commands import migrations as migration_commands
from api.commands import templates as template_commands
from api.commands.rights import can
from api.errors import ApiError
from api.ui.common import back, engine, flash, gateway, page, read_form, viewer
from core.process.migration import MigrationCreate

router = APIRouter(prefix="/ui", include_in_schema=False)
SHOWN = 200  # preview rows and items shown on a page; the API pages through all of them
_PAIR = re.compile(r"^\s*(\d{1,6})\s*(?:→|->|:|=)\s*(\d{1,6})\s*$")


def plan_of(fields: dict[str, str]) -> MigrationCreate:
    """The plan a form describes; ValueError with a sentence a person can act on."""
    states = [s for s in re.split(r"[\s,]+", fields.get("states", "").strip()) if s]
    mapping = []
    for part in [p for p in re.split(r"[,\n]+", fields.get("mapping", "")) if p.strip()]:
        matched = _PAIR.match(part)
        if matched is None:
            raise ValueError(f"'{part.strip()}' is not a mapping: write the source and target state ids, like 4 → 7")
        mapping.append({"from_state_id": int(matched[1]), "to_state_id": int(matched[2])})
    if any(not s.isdigit() for s in states):
        raise ValueError("States are state ids, separated by commas, like 3, 4")
    try:
        return MigrationCreate.model_validate(
            {
                "template_code": fields.get("template", ""),
                "from_version": int(fields.get("from", "0") or 0),
                "to_version": int(fields.get("to", "0") or 0),
                "mapping": mapping,
                "filter": {"state_ids": [int(s) for s in states] or None},
                "rules": {k: fields[k] for k in ("open_approval", "deadline", "entity") if fields.get(k)},
                "batch_size": int(fields.get("batch_size", "20") or 20),
                "pause_ms": int(fields.get("pause_ms", "200") or 200),
            },
            strict=False,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc


@router.get("/migrations")
async def migrations_page(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    if not can(principal):
        message = f"Migrations are an admin's to plan and start; your role is {principal.role}."
        return page("message.html", status=403, principal=principal, csrf=csrf, message=message)
    fields = {k: v[:2000] for k, v in request.query_params.items()}
    listing = await template_commands.listing(principal, engine(request), active=True, limit=200)
    code = fields.get("template") or ""
    versions: list[Any] = []
    if code:
        try:
            versions = await template_commands.versions(code[:50], principal, engine(request))
        except ApiError:
            versions = []
        if versions and "to" not in fields:
            fields["to"] = str(versions[-1].version)
            fields["from"] = str(versions[-2].version if len(versions) > 1 else versions[-1].version)
    preview, problem = None, None
    if fields.get("preview"):
        try:
            preview = await migration_commands.preview(plan_of(fields), principal, engine(request))
        except ValueError as exc:
            problem = str(exc)
        except ApiError as exc:
            problem = exc.detail
    recent = await migration_commands.listing(principal, engine(request), code or None, 20, None)
    return page(
        "migrations.html",
        principal=principal,
        csrf=csrf,
        templates=listing.items,
        versions=versions,
        fields=fields,
        preview=preview,
        shown=SHOWN,
        problem=problem,
        recent=recent.items,
        **flash(request),
    )


@router.post("/migrations")
async def start_migration(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    try:
        plan = plan_of(form)
        started = await migration_commands.start(plan, principal, engine(request), gateway(request))
    except ValueError as exc:
        return back(request, "/ui/migrations", error=str(exc))
    except ApiError as exc:
        return back(request, "/ui/migrations", error=exc.detail)
    return back(request, f"/ui/migrations/{started.id}", note="Migration started: its batches run one after another.")


@router.get("/migrations/{migration_id}")
async def migration_page(request: Request, migration_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        found = await migration_commands.get(migration_id, principal, engine(request))
        refused = await migration_commands.items(migration_id, principal, engine(request), "refused", SHOWN, None)
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    return page("migration.html", principal=principal, csrf=csrf, migration=found, refused=refused, **flash(request))
