"""The work queue page (seed 001, phase 2E/2F): filters by type, priority label, assignee and due
date; a snooze picker, a reassign picker and skip with a reason, on a selection of items at once, each
confirmed first and answered item by item. Every change goes through the work item command, with its
ownership rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, ValidationError

from api.commands import people as people_commands
from api.commands import work as work_commands
from api.commands.people import ReassignRequest
from api.deps import Principal
from api.errors import ApiError
from api.ui.common import engine, flash, gateway, page, read_form_pairs, viewer
from api.ui.lists import Filter, Listing, ListQuery, answered, filtered_by, page_links
from core.work.contracts import ItemChange

router = APIRouter(prefix="/ui", include_in_schema=False)
MAX_BULK = 100


class QueueQuery(ListQuery):
    type: str | None = Field(default=None, max_length=100)
    label: Literal["", "Critical", "High", "Medium", "Low"] = ""
    assignee: str | None = Field(default=None, max_length=200)
    due: Literal["", "overdue", "today", "week"] = ""
    status: Literal["", "not_started", "underway", "snoozed"] = ""


@dataclass(frozen=True)
class Result:
    id: str
    name: str
    ok: bool
    outcome: str


def _people(request: Request, principal: Principal) -> list[str]:
    """Whom work can be given to: every key's name and every role, the caller first."""
    keys: dict[bytes, Principal] = request.app.state.api_keys
    names = sorted({p.name for p in keys.values()} - {principal.name})
    return [principal.name, *names, *sorted({p.role for p in keys.values()})]


async def _queue(request: Request, principal: Principal, csrf: str, query: QueueQuery, **extra: Any) -> HTMLResponse:
    now = datetime.now(UTC)
    due_before = {
        "overdue": now,
        "today": now.replace(hour=23, minute=59, second=59),
        "week": now + timedelta(days=7),
    }.get(query.due)
    found = await work_commands.queue_page(
        principal,
        engine(request),
        assignee=query.assignee or None,
        workflow_type=query.type or None,
        label=query.label or None,
        due_before=due_before,
        status=query.status or None,
        limit=query.limit,
        cursor=query.cursor,
    )
    types = await work_commands.workflow_types(engine(request))
    next_url, first_url = page_links(request, "/ui/queue", found.next_cursor)
    listing = Listing(
        title="Work queue",
        noun="work item",
        path="/ui/queue",
        live="queue",
        filters=[
            Filter("type", "Type", query.type or "", "select", [("", "Any"), *[(t, t) for t in types]]),
            Filter(
                "label",
                "Priority",
                query.label,
                "select",
                [("", "Any"), *[(x, x) for x in ("Critical", "High", "Medium", "Low")]],
            ),
            Filter(
                "assignee",
                "Assignee",
                query.assignee,
                placeholder="you and your role" if principal.role != "admin" else "anyone",
            ),
            Filter(
                "due",
                "Due",
                query.due,
                "select",
                [("", "Any time"), ("overdue", "Overdue"), ("today", "By tonight"), ("week", "Within a week")],
            ),
            Filter(
                "status",
                "Status",
                query.status,
                "select",
                [("", "Open"), ("not_started", "Not started"), ("underway", "Underway"), ("snoozed", "Snoozed")],
            ),
        ],
        headers=[],
        rows=[],
        total=found.total,
        next_url=next_url,
        first_url=first_url,
        filtered=filtered_by(request, ["type", "label", "assignee", "due", "status"]),
    )
    return page(
        "queue.html",
        principal=principal,
        csrf=csrf,
        listing=listing,
        items=found.items,
        now=now,
        people=_people(request, principal),
        **{**flash(request), **extra},
    )


@router.get("/queue")
async def queue_page(request: Request) -> HTMLResponse:
    principal, csrf = await viewer(request)
    return await answered(
        principal, csrf, lambda: _queue(request, principal, csrf, QueueQuery.model_validate(dict(request.query_params)))
    )


async def _reassign(
    request: Request, principal: Principal, csrf: str, pairs: list[tuple[str, str]], ids: list[str]
) -> Response:
    """Reassign the selected items (core/people): confirmed first, then each moved and recorded with who
    and why; someone out of office gets it through their delegate."""
    fields = dict(pairs)
    to, reason = fields.get("to", "").strip(), fields.get("reason", "").strip()
    try:
        body = ReassignRequest(items=[f"work:{uuid.UUID(i)}" for i in ids], to=to, reason=reason)
    except (ValueError, ValidationError):
        problem = "Select at least one item, whom to give them to, and why (the reason is recorded)."
        return await _queue(request, principal, csrf, QueueQuery(), error=problem)
    if fields.get("confirmed") != "1":
        found = await work_commands.get_many([uuid.UUID(i) for i in ids], principal, engine(request))
        return page(
            "confirm.html",
            principal=principal,
            csrf=csrf,
            question=f"Reassign {len(found)} item{'' if len(found) == 1 else 's'} to {to}, because: {reason}?",
            lines=[f"{f.definition_name} for {f.entity_name} ({f.assignee})" for f in found],
            action="/ui/queue/bulk",
            fields=[(k, v) for k, v in pairs if k in ("item", "action", "to", "reason")],
            button="Confirm",
            back="/ui/queue",
        )
    try:
        moved = await people_commands.reassign(body, principal, engine(request), gateway(request))
    except ApiError as exc:
        return await _queue(request, principal, csrf, QueueQuery(), error=exc.detail)
    results = [
        Result(
            m.item.partition(":")[2],
            m.item,
            m.outcome == "moved",
            (f"now with {m.assignee}" + (f" on behalf of {m.on_behalf_of}" if m.on_behalf_of else ""))
            if m.outcome == "moved"
            else f"not moved: {m.outcome.replace('_', ' ')}",
        )
        for m in moved.items
    ]
    return await _queue(
        request,
        principal,
        csrf,
        QueueQuery(),
        results=results,
        results_title=f"Reassign to {to}: {moved.moved} of {len(results)} moved",
    )


def _change(action: str, fields: dict[str, str], actor: str) -> ItemChange:
    if action == "snooze":
        return ItemChange(action="snooze", actor=actor, days=int(fields.get("days", "0")))
    if action == "escalate":
        return ItemChange(action="escalate", actor=actor, escalation_user_id=fields.get("escalation_user_id", "")[:200])
    if action == "skip":
        return ItemChange(action="skip", actor=actor, reason=fields.get("reason", "")[:500] or None)
    raise ValueError("choose snooze, reassign or skip")


def _describe(action: str, change: ItemChange) -> str:
    if action == "snooze":
        return f"Snooze for {change.days} day{'' if change.days == 1 else 's'}"
    if action == "escalate":
        return f"Reassign to {change.escalation_user_id}"
    return f"Skip, because: {change.reason}"


@router.post("/queue/bulk")
async def bulk(request: Request) -> Response:
    """First a confirmation naming the items and the change; once confirmed, each item changed through
    its command, and the queue shown with what happened to each."""
    principal, csrf = await viewer(request)
    pairs = await read_form_pairs(request, csrf)
    fields = dict(pairs)
    ids = list(dict.fromkeys(v for k, v in pairs if k == "item"))
    action = fields.get("action", "")
    if action == "reassign":
        return await _reassign(request, principal, csrf, pairs, ids)
    problem = None
    try:
        change = _change(action, fields, principal.name)
        items = [uuid.UUID(i) for i in ids]
    except (ValueError, ValidationError) as exc:
        problem = "Skipping needs a reason." if action == "skip" else str(exc).splitlines()[0]
    if problem is None and not items:
        problem = "Select at least one item."
    if problem is None and len(items) > MAX_BULK:
        problem = f"At most {MAX_BULK} items at once."
    if problem is not None:
        return await _queue(request, principal, csrf, QueueQuery(), error=problem)
    found = {item.id: item for item in await work_commands.get_many(items, principal, engine(request))}
    if fields.get("confirmed") != "1":
        lines = [f"{f.definition_name} for {f.entity_name} ({f.assignee})" for f in found.values()]
        missing = len(items) - len(found)
        return page(
            "confirm.html",
            principal=principal,
            csrf=csrf,
            question=f"{_describe(action, change)}: {len(found)} item{'' if len(found) == 1 else 's'}?",
            lines=lines + ([f"{missing} selected item(s) no longer exist"] if missing else []),
            action="/ui/queue/bulk",
            fields=[(k, v) for k, v in pairs if k in ("item", "action", "days", "escalation_user_id", "reason")],
            button="Confirm",
            back="/ui/queue",
        )
    results = []
    for item_id in items:
        item = found.get(item_id)
        name = f"{item.definition_name} for {item.entity_name}" if item else str(item_id)
        try:
            changed = await work_commands.change(item_id, change, principal, engine(request), gateway(request))
            outcome = {
                "snooze": f"snoozed until {changed.snooze_until:%d %b}" if changed.snooze_until else "snoozed",
                "escalate": f"now with {changed.escalation_user_id}",
                "skip": "skipped",
            }[action]
            results.append(Result(str(item_id), name, True, outcome))
        except ApiError as exc:
            results.append(Result(str(item_id), name, False, f"not changed: {exc.detail}"))
    done = sum(1 for r in results if r.ok)
    return await _queue(
        request,
        principal,
        csrf,
        QueueQuery(),
        results=results,
        results_title=f"{_describe(action, change)}: {done} of {len(results)} changed",
    )
