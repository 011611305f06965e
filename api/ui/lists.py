"""The console's lists: each a filter bar (a GET form, so a filtered list is a link to share), a table
and keyset pages. Every list reads through its domain's command, with the roles the API's lists have.

One template (``list.html``) draws them all from a ``Listing``; a list here says only what it filters
on and what a row shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.commands import instances as instance_commands
from api.deps import Principal
from api.errors import ApiError
from api.ui.common import engine, flash, page, viewer
from core.platform.pages import CursorInvalid
from core.process import templates

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    cls: str | None = None


@dataclass(frozen=True)
class Row:
    key: str
    cells: list[Cell]


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    value: Any = None
    kind: Literal["text", "select", "check"] = "text"
    options: list[tuple[str, str]] = field(default_factory=list)
    placeholder: str | None = None


@dataclass(frozen=True)
class Listing:
    title: str
    noun: str
    path: str
    live: str  # what changes refresh it (see api/ui/live.py)
    filters: list[Filter]
    headers: list[str]
    rows: list[Row]
    total: int
    next_url: str | None
    first_url: str | None
    filtered: bool
    note: str | None = None


class ListQuery(BaseModel):
    """What every list takes besides its own filters: the page it starts after."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)


def _links(request: Request, path: str, next_cursor: str | None) -> tuple[str | None, str | None]:
    """The next page keeps the filters and carries the cursor; the first page drops only the cursor."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    next_url = f"{path}?{urlencode([*kept, ('cursor', next_cursor)])}" if next_cursor else None
    first_url = f"{path}?{urlencode(kept)}" if "cursor" in request.query_params else None
    return next_url, first_url


def _filtered(request: Request, names: list[str]) -> bool:
    return any(request.query_params.get(n) for n in names)


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%d %b %H:%M") if ts else "—"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


async def _render(
    request: Request,
    model: type[BaseModel],
    build: Callable[[Principal, Any], Awaitable[Listing]],
) -> HTMLResponse:
    """Check the query, build the listing, and answer a page; a bad filter or a stale cursor is the
    page with a message saying what to change (422), never a stack trace."""
    principal, csrf = await viewer(request)
    try:
        query = model.model_validate(dict(request.query_params))
        listing = await build(principal, query)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc']) or 'filter'}: {first['msg']}"
        return page("message.html", status=422, principal=principal, csrf=csrf, message=message)
    except CursorInvalid:
        message = "That page link is stale or was changed; start again from the first page."
        return page("message.html", status=422, principal=principal, csrf=csrf, message=message)
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    return page("list.html", principal=principal, csrf=csrf, listing=listing, **flash(request))


# --------------------------------------------------------------------------- process instances


class InstanceQuery(ListQuery):
    template: str | None = Field(default=None, max_length=50)
    status: Literal["", "active", "completed", "cancelled"] = ""
    state: str | None = Field(default=None, max_length=200)
    q: str | None = Field(default=None, max_length=200)
    stuck: bool = False
    sort: Literal["started", "updated"] = "started"


@router.get("/instances")
async def instances_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: InstanceQuery) -> Listing:
        found = await instance_commands.listing(
            principal,
            engine(request),
            template_code=query.template or None,
            status=query.status or None,
            state_name=query.state or None,
            search=query.q or None,
            stuck=query.stuck,
            sort=query.sort,
            limit=query.limit,
            cursor=query.cursor,
        )
        async with engine(request).connect() as conn:
            codes = await templates.active_codes(conn)
        rows = [
            Row(
                str(i.instance_id),
                [
                    Cell(i.entity_name or str(i.instance_id)[:8], href=f"/ui/instances/{i.instance_id}"),
                    Cell(f"{i.template_code} v{i.template_version}"),
                    Cell((i.current_state_name or "—") + (" · approval pending" if i.pending_approval else "")),
                    Cell(
                        i.workflow_status
                        + ("" if i.success is None else (" · succeeded" if i.success else " · failed")),
                        cls="ok" if i.success else None,
                    ),
                    Cell(_when(i.started_ts)),
                    Cell(_when(i.updated_ts)),
                    Cell(_span(i.overdue_seconds) and f"over by {_span(i.overdue_seconds)}", cls="warn"),
                ],
            )
            for i in found.items
        ]
        next_url, first_url = _links(request, "/ui/instances", found.next_cursor)
        return Listing(
            title="Process instances",
            noun="instance",
            path="/ui/instances",
            live="instances",
            filters=[
                Filter("q", "Search", query.q, placeholder="Customer name or id"),
                Filter("template", "Template", query.template or "", "select", [("", "Any"), *[(c, c) for c in codes]]),
                Filter(
                    "status",
                    "Status",
                    query.status,
                    "select",
                    [("", "Any"), ("active", "Active"), ("completed", "Completed"), ("cancelled", "Cancelled")],
                ),
                Filter("state", "State", query.state, placeholder="State name"),
                Filter("stuck", "Over expected time", query.stuck, "check"),
                Filter(
                    "sort",
                    "Sort by",
                    query.sort,
                    "select",
                    [("started", "Newest started"), ("updated", "Latest change")],
                ),
            ],
            headers=["Customer", "Template", "State", "Status", "Started", "Last change", "Stuck"],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=_filtered(request, ["q", "template", "status", "state", "stuck"]),
        )

    return await _render(request, InstanceQuery, build)
