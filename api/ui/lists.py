"""The console's lists: each a filter bar (a GET form, so a filtered list is a link to share), a table
and keyset pages. Every list reads through its domain's command, with the roles the API's lists have.

One template (``list.html``) draws them all from a ``Listing``; a list here says only what it filters
on and what a row shows."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.commands import automation as automation_commands
from api.commands import breakers as breaker_commands
from api.commands import instances as instance_commands
from api.commands import sessions as session_commands
from api.commands import steps as step_commands
from api.commands import templates as template_commands
from api.commands.rights import can
from api.deps import Principal
from api.errors import ApiError
from api.ui.common import back, engine, flash, gateway, page, read_form, span, viewer
from core.automation.rules import TriggerAction
from core.platform.pages import CursorInvalid
from core.process import templates

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    cls: str | None = None
    post: str | None = None  # an action: a button posting (with the form's CSRF token) to this path
    fields: list[tuple[str, str]] = field(default_factory=list)


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
    action: tuple[str, str] | None = None  # (href, label): what one starts from this list


class ListQuery(BaseModel):
    """What every list takes besides its own filters: the page it starts after."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)


def page_links(request: Request, path: str, next_cursor: str | None) -> tuple[str | None, str | None]:
    """The next page keeps the filters and carries the cursor; the first page drops only the cursor."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    next_url = f"{path}?{urlencode([*kept, ('cursor', next_cursor)])}" if next_cursor else None
    first_url = f"{path}?{urlencode(kept)}" if "cursor" in request.query_params else None
    return next_url, first_url


def filtered_by(request: Request, names: list[str]) -> bool:
    return any(request.query_params.get(n) for n in names)


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%d %b %H:%M") if ts else "—"


def _span(seconds: float | None) -> str:
    return "" if seconds is None else span(seconds)


async def answered(principal: Principal, csrf: str, make: Callable[[], Awaitable[HTMLResponse]]) -> HTMLResponse:
    """A page, or for a bad filter or a stale page link the page with a message saying what to change
    (422), and for a refusal the command's own message: never a stack trace."""
    try:
        return await make()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc']) or 'filter'}: {first['msg']}"
        return page("message.html", status=422, principal=principal, csrf=csrf, message=message)
    except CursorInvalid:
        message = "That page link is stale or was changed; start again from the first page."
        return page("message.html", status=422, principal=principal, csrf=csrf, message=message)
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)


async def _render(
    request: Request,
    model: type[BaseModel],
    build: Callable[[Principal, Any], Awaitable[Listing]],
) -> HTMLResponse:
    """Check the query, build the listing, and answer the list page."""
    principal, csrf = await viewer(request)

    async def make() -> HTMLResponse:
        listing = await build(principal, model.model_validate(dict(request.query_params)))
        return page("list.html", principal=principal, csrf=csrf, listing=listing, **flash(request))

    return await answered(principal, csrf, make)


# --------------------------------------------------------------------------- process instances


class InstanceQuery(ListQuery):
    template: str | None = Field(default=None, max_length=50)
    status: Literal["", "active", "completed", "cancelled"] = ""
    state: str | None = Field(default=None, max_length=200)
    q: str | None = Field(default=None, max_length=200)
    stuck: bool = False
    paused: bool = False
    variant: str | None = Field(default=None, max_length=100)
    sort: Literal["started", "updated", "risk"] = "started"


def _risk(row: Any) -> str:
    """The forecast's risk in words: the chance to be late (with a deadline) or to fail."""
    if row.risk is None:
        return ""
    if row.on_time_probability is not None:
        return f"{row.risk * 100:.0f}% late"
    return f"{row.risk * 100:.0f}% fail"


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
            paused=query.paused,
            sort=query.sort,
            variant=query.variant or None,
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
                    Cell(
                        (i.current_state_name or "—")
                        + (" · approval pending" if i.pending_approval else "")
                        + (f" · paused by {i.paused.actor}" if i.paused else "")
                    ),
                    Cell(
                        i.workflow_status
                        + ("" if i.success is None else (" · succeeded" if i.success else " · failed")),
                        cls="ok" if i.success else None,
                    ),
                    Cell(_when(i.started_ts)),
                    Cell(_when(i.updated_ts)),
                    Cell(_span(i.overdue_seconds) and f"over by {_span(i.overdue_seconds)}", cls="warn"),
                    Cell(_risk(i), cls="warn" if i.risk is not None and i.risk >= 0.5 else None),
                ],
            )
            for i in found.items
        ]
        next_url, first_url = page_links(request, "/ui/instances", found.next_cursor)
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
                Filter("paused", "Paused", query.paused, "check"),
                Filter(
                    "sort",
                    "Sort by",
                    query.sort,
                    "select",
                    [("started", "Newest started"), ("updated", "Latest change"), ("risk", "Highest risk")],
                ),
            ],
            headers=["Customer", "Template", "State", "Status", "Started", "Last change", "Stuck", "Risk"],
            action=("/ui/instances/new", "Start an instance") if can(principal, "operator") else None,
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["q", "template", "status", "state", "stuck", "paused", "variant"]),
        )

    return await _render(request, InstanceQuery, build)


def _duration(start: datetime | None, end: datetime | None) -> str:
    """How long a run took, or has taken so far."""
    if start is None:
        return ""
    took = _span(((end or datetime.now(UTC)) - start).total_seconds())
    return took if end else f"{took} so far"


# --------------------------------------------------------------------------- step executions


class ExecutionQuery(ListQuery):
    workflow: str | None = Field(default=None, max_length=100)
    status: Literal["", "pending", "running", "completed", "failed", "cancelled"] = ""
    trigger: Literal["", "api", "rule", "retry", "workflow.run"] = ""
    q: str | None = Field(default=None, max_length=200)
    variant: str | None = Field(default=None, max_length=40)


@router.get("/executions")
async def executions_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: ExecutionQuery) -> Listing:
        found = await step_commands.executions(
            principal,
            engine(request),
            workflow=query.workflow or None,
            status=query.status or None,
            trigger_kind=query.trigger or None,
            search=query.q or None,
            variant=query.variant or None,
            limit=query.limit,
            cursor=query.cursor,
        )
        rows = []
        for e in found.items:
            variant = f" · variant {e.variant}" if e.variant else ""
            rows.append(
                Row(
                    str(e.id),
                    [
                        Cell(f"{e.workflow_name} v{e.workflow_version}{variant}", href=f"/ui/executions/{e.id}"),
                        Cell(
                            e.status + (" · paused" if e.paused else ""),
                            cls="warn" if e.status == "failed" else ("ok" if e.status == "completed" else None),
                        ),
                        Cell(str(e.trigger.get("kind", "—"))),
                        Cell(_when(e.started_ts or e.created_ts)),
                        Cell(_duration(e.started_ts, e.finished_ts)),
                        Cell((e.error or "")[:160] if e.status == "failed" else "", cls="warn"),
                    ],
                )
            )
        next_url, first_url = page_links(request, "/ui/executions", found.next_cursor)
        return Listing(
            title="Step executions",
            noun="execution",
            path="/ui/executions",
            live="executions",
            filters=[
                Filter("q", "Search", query.q, placeholder="Workflow name or execution id"),
                Filter(
                    "status",
                    "Status",
                    query.status,
                    "select",
                    [
                        ("", "Any"),
                        *[(s, s.capitalize()) for s in ("pending", "running", "completed", "failed", "cancelled")],
                    ],
                ),
                Filter(
                    "trigger",
                    "Started by",
                    query.trigger,
                    "select",
                    [
                        ("", "Anything"),
                        ("api", "API"),
                        ("rule", "Rule"),
                        ("retry", "Retry"),
                        ("workflow.run", "Parent workflow"),
                    ],
                ),
            ],
            headers=["Workflow", "Status", "Started by", "Started", "Duration", "Why it failed"],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["q", "status", "trigger", "workflow", "variant"]),
        )

    return await _render(request, ExecutionQuery, build)


# --------------------------------------------------------------------------- agent sessions


class SessionQuery(ListQuery):
    status: Literal[
        "", "initializing", "running", "awaiting_approval", "completed", "failed", "cancelled", "budget_exceeded"
    ] = ""
    q: str | None = Field(default=None, max_length=200)


@router.get("/sessions")
async def sessions_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: SessionQuery) -> Listing:
        found = await session_commands.listing(
            principal,
            engine(request),
            status=query.status or None,
            search=query.q or None,
            limit=query.limit,
            cursor=query.cursor,
        )
        rows = [
            Row(
                s.session_id,
                [
                    Cell(s.goal[:90], href=f"/ui/sessions/{s.session_id}"),
                    Cell(
                        s.session_status + (" · paused" if s.paused else ""),
                        cls="warn" if s.session_status in ("failed", "budget_exceeded") else None,
                    ),
                    Cell(", ".join(str(a) for a in s.active_agents) or "—"),
                    Cell(f"{s.tokens_used:,}" + (f" of {s.token_budget:,}" if s.token_budget else "")),
                    Cell(f"${s.cost_usd:,.4f}"),
                    Cell(_when(s.started_ts)),
                ],
            )
            for s in found.items
        ]
        next_url, first_url = page_links(request, "/ui/sessions", found.next_cursor)
        statuses = ("running", "awaiting_approval", "completed", "failed", "cancelled", "budget_exceeded")
        return Listing(
            title="Agent sessions",
            noun="session",
            path="/ui/sessions",
            live="sessions",
            filters=[
                Filter("q", "Search", query.q, placeholder="Words of the goal, or a session id"),
                Filter(
                    "status",
                    "Status",
                    query.status,
                    "select",
                    [("", "Any"), *[(s, s.replace("_", " ")) for s in statuses]],
                ),
            ],
            headers=["Goal", "Status", "Agents", "Tokens", "Cost", "Started"],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["q", "status"]),
        )

    return await _render(request, SessionQuery, build)


# --------------------------------------------------------------------------- rules and dead letters


class RuleQuery(ListQuery):
    trigger: Literal["", *get_args(TriggerAction)] = ""  # type: ignore[valid-type]
    entity_type: str | None = Field(default=None, max_length=100)
    active: Literal["", "yes", "no"] = ""


@router.get("/rules")
async def rules_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: RuleQuery) -> Listing:
        found, activity = await automation_commands.rules(
            principal,
            engine(request),
            trigger_entity_type=query.entity_type or None,
            trigger_action_type=query.trigger or None,
            active={"yes": True, "no": False}.get(query.active),
            limit=query.limit,
            cursor=query.cursor,
        )
        rows = []
        for r in found.items:
            seen = activity.get(r.id)
            rows.append(
                Row(
                    str(r.id),
                    [
                        Cell(r.workflow_name, href=f"/ui/rules/{r.id}"),
                        Cell(f"{r.trigger_action_type} on {r.trigger_entity_type}"),
                        Cell("active" if r.active_flag else "inactive"),
                        Cell(_when(seen.last_run) if seen else "never"),
                        Cell(
                            f"{seen.failures} of {seen.runs}" if seen else "0",
                            cls="warn" if seen and seen.failures else None,
                        ),
                        Cell("Dead letters", href=f"/ui/dead-letters?rule={r.id}"),
                    ],
                )
            )
        next_url, first_url = page_links(request, "/ui/rules", found.next_cursor)
        triggers = get_args(TriggerAction)
        return Listing(
            title="Automation rules",
            noun="rule",
            path="/ui/rules",
            live="rules",
            filters=[
                Filter(
                    "trigger",
                    "Trigger",
                    query.trigger,
                    "select",
                    [("", "Any"), *[(t, t.replace("_", " ")) for t in triggers]],
                ),
                Filter("entity_type", "Entity type", query.entity_type, placeholder="customer, job, …"),
                Filter(
                    "active", "Active", query.active, "select", [("", "Any"), ("yes", "Active"), ("no", "Inactive")]
                ),
            ],
            headers=["Rule", "Trigger", "State", "Last run", "Failed runs", ""],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["trigger", "entity_type", "active"]),
        )

    return await _render(request, RuleQuery, build)


class RuleExecutionQuery(ListQuery):
    status: Literal["", "running", "completed", "failed", "skipped"] = ""


@router.get("/rules/{rule_id}")
async def rule_page(request: Request, rule_id: uuid.UUID) -> HTMLResponse:
    async def build(principal: Principal, query: RuleExecutionQuery) -> Listing:
        rule, found = await automation_commands.rule_executions(
            rule_id, principal, engine(request), status=query.status or None, limit=query.limit, cursor=query.cursor
        )
        rows = [
            Row(
                str(x.event_id),
                [
                    Cell(_when(x.started_ts)),
                    Cell(x.status, cls="warn" if x.status == "failed" else ("ok" if x.status == "completed" else None)),
                    Cell((x.reason or "")[:160]),
                    Cell(_duration(x.started_ts, x.finished_ts)),
                    Cell(str(x.event_id)[:8], cls="mono"),
                ],
            )
            for x in found.items
        ]
        next_url, first_url = page_links(request, f"/ui/rules/{rule_id}", found.next_cursor)
        statuses = ("running", "completed", "failed", "skipped")
        state = "active" if rule.active_flag else "inactive"
        return Listing(
            title=f"Rule: {rule.workflow_name}",
            noun="execution",
            path=f"/ui/rules/{rule_id}",
            live="rules",
            filters=[Filter("status", "Status", query.status, "select", [("", "Any"), *[(s, s) for s in statuses]])],
            headers=["Started", "Status", "Why", "Took", "Event"],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["status"]),
            note=f"{rule.trigger_action_type} on {rule.trigger_entity_type}, {state}",
            action=(f"/ui/dead-letters?rule={rule_id}", "Its dead letters"),
        )

    return await _render(request, RuleExecutionQuery, build)


class DeadLetterQuery(ListQuery):
    rule: uuid.UUID | None = None
    open: bool = False


@router.get("/dead-letters")
async def dead_letters_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: DeadLetterQuery) -> Listing:
        found = await automation_commands.dead_letters(
            principal, engine(request), rule_id=query.rule, open_only=query.open, limit=query.limit, cursor=query.cursor
        )
        may_redeliver = can(principal, "operator")
        rows = [
            Row(
                str(d.id),
                [
                    Cell(f"{d.method} {d.url}"[:100], cls="mono"),
                    Cell(str(d.last_status or "—")),
                    Cell((d.last_error or "")[:120]),
                    Cell(str(d.attempts)),
                    Cell(_when(d.created_ts)),
                    Cell(
                        f"redelivered {_when(d.redelivered_ts)} → {d.redelivery_status or 'no answer'}"
                        if d.redelivered_ts
                        else "not yet",
                        cls="ok" if d.redelivery_status and 200 <= d.redelivery_status < 300 else None,
                    ),
                    Cell("Redeliver", post=f"/ui/dead-letters/{d.id}/redeliver") if may_redeliver else Cell(""),
                ],
            )
            for d in found.items
        ]
        next_url, first_url = page_links(request, "/ui/dead-letters", found.next_cursor)
        return Listing(
            title="Webhook dead letters",
            noun="dead letter",
            path="/ui/dead-letters",
            live="dead-letters",
            filters=[Filter("open", "Not yet delivered", query.open, "check")]
            + ([Filter("rule", "Rule id", str(query.rule))] if query.rule else []),
            headers=["Request", "Last status", "Last error", "Attempts", "Failed", "Redelivery", ""],
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["open", "rule"]),
        )

    return await _render(request, DeadLetterQuery, build)


@router.post("/dead-letters/{dead_letter_id}/redeliver")
async def redeliver(request: Request, dead_letter_id: uuid.UUID) -> Response:
    principal, csrf = await viewer(request)
    await read_form(request, csrf)
    try:
        result = await automation_commands.redeliver(dead_letter_id, principal, engine(request), gateway(request))
    except ApiError as exc:
        return back(request, "/ui/dead-letters", error=exc.detail)
    if result.error:
        return back(
            request, "/ui/dead-letters", error=f"Redelivered; the receiver answered {result.status}: {result.error}"
        )
    return back(request, "/ui/dead-letters", note=f"Redelivered; the receiver answered {result.status}.")


# --------------------------------------------------------------------------- breakers


@router.get("/breakers")
async def breakers_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: ListQuery) -> Listing:
        found = await breaker_commands.listing(principal, engine(request), request.app.state.settings)
        may_reset = can(principal)
        rows = [
            Row(
                b.target,
                [
                    Cell(b.target, cls="mono"),
                    Cell(b.state, cls="warn" if b.state != "closed" else "ok"),
                    Cell(str(b.consecutive_failures)),
                    Cell(_when(b.opened_ts)),
                    Cell(_when(b.half_open_at) if b.half_open_at else ""),
                    Cell((b.last_error or "")[:120]),
                    Cell("Reset", post="/ui/breakers/reset", fields=[("target", b.target)])
                    if may_reset and b.state != "closed"
                    else Cell(""),
                ],
            )
            for b in found
        ]
        return Listing(
            title="Circuit breakers",
            noun="breaker",
            path="/ui/breakers",
            live="breakers",
            filters=[],
            headers=["Target", "State", "Failures in a row", "Opened", "Tries again", "Last error", ""],
            rows=rows,
            total=len(rows),
            next_url=None,
            first_url=None,
            filtered=False,
            note="a target is listed once it has failed",
        )

    return await _render(request, ListQuery, build)


@router.post("/breakers/reset")
async def reset_breaker(request: Request) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    target = form.get("target", "")[:500]
    try:
        await breaker_commands.reset(target, principal, engine(request))
    except ApiError as exc:
        return back(request, "/ui/breakers", error=exc.detail)
    return back(request, "/ui/breakers", note=f"Reset {target}: calls go through again.")


# --------------------------------------------------------------------------- definitions


class TemplateQuery(ListQuery):
    versions: bool = False


@router.get("/templates")
async def templates_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: TemplateQuery) -> Listing:
        found = await template_commands.listing(principal, engine(request), all_versions=query.versions, limit=200)
        may_start = can(principal, "operator")
        rows = [
            Row(
                f"{t.code}:{t.version}",
                [
                    Cell(t.name, href=f"/ui/analytics/templates/{t.code}"),
                    Cell(t.code, cls="mono"),
                    Cell(f"v{t.version}"),
                    Cell(t.industry_sector or "—"),
                    Cell(str(t.state_count)),
                    Cell("active" if t.active_workflow_flag else "inactive"),
                    Cell("Design", href=f"/ui/designer/templates/{t.code}"),
                    Cell("Instances", href=f"/ui/instances?template={t.code}"),
                    Cell("Start", href=f"/ui/instances/new?template={t.code}") if may_start else Cell(""),
                    Cell("Migrate", href=f"/ui/migrations?template={t.code}") if can(principal) else Cell(""),
                ],
            )
            for t in found.items
        ]
        return Listing(
            title="Process templates",
            noun="template",
            path="/ui/templates",
            live="templates",
            filters=[Filter("versions", "Every version", query.versions, "check")],
            headers=["Name", "Code", "Version", "Sector", "States", "State", "", "", "", ""],
            action=("/ui/designer/templates/new", "New template") if can(principal) else None,
            rows=rows,
            total=found.total,
            next_url=None,
            first_url=None,
            filtered=filtered_by(request, ["versions"]),
        )

    return await _render(request, TemplateQuery, build)


class WorkflowQuery(ListQuery):
    enabled: Literal["", "yes", "no"] = ""


@router.get("/workflows")
async def workflows_page(request: Request) -> HTMLResponse:
    async def build(principal: Principal, query: WorkflowQuery) -> Listing:
        found = await step_commands.workflows(
            principal,
            engine(request),
            enabled={"yes": True, "no": False}.get(query.enabled),
            limit=query.limit,
            cursor=query.cursor,
        )
        rows = [
            Row(
                w.name,
                [
                    Cell(w.name, href=f"/ui/workflows/{w.name}", cls="mono"),
                    Cell(f"v{w.version}"),
                    Cell(w.description[:120]),
                    Cell("enabled" if w.enabled else "disabled"),
                    Cell(_when(w.created_ts)),
                    Cell("Design", href=f"/ui/designer/workflows/{w.name}"),
                    Cell("Executions", href=f"/ui/executions?workflow={w.name}"),
                ],
            )
            for w in found.items
        ]
        next_url, first_url = page_links(request, "/ui/workflows", found.next_cursor)
        return Listing(
            title="Step workflows",
            noun="workflow",
            path="/ui/workflows",
            live="workflows",
            filters=[
                Filter(
                    "enabled", "Enabled", query.enabled, "select", [("", "Any"), ("yes", "Enabled"), ("no", "Disabled")]
                )
            ],
            headers=["Name", "Latest", "Description", "State", "Saved", "", ""],
            action=("/ui/designer/workflows/new", "New workflow") if can(principal) else None,
            rows=rows,
            total=found.total,
            next_url=next_url,
            first_url=first_url,
            filtered=filtered_by(request, ["enabled"]),
        )

    return await _render(request, WorkflowQuery, build)
