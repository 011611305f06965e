"""Run pages: a step execution as a timeline (each step's bar, attempts, input and output, the failed
step's error, nested steps as indented lanes), and an agent session's calls in order. Their actions
(cancel, pause and resume, re-run from a step with edited input, fork a session from a stage) post to
the same commands the API's routes call."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.commands import instances as instance_commands
from api.commands import sessions as session_commands
from api.commands import steps as step_commands
from api.commands.rights import can
from api.errors import ApiError
from api.ui.common import back, engine, flash, gateway, page, read_form, viewer
from core.agents.registry import stages
from core.agents.sessions import SessionFork
from core.platform.pauses import PauseCreate, ResumeCreate
from core.steps.contracts import RetryRequest, StepPublic

router = APIRouter(prefix="/ui", include_in_schema=False)

TIMELINE_W, LANE_H = 640, 26


@dataclass(frozen=True)
class Lane:
    """One recorded step on the timeline: where its bar starts and how long it is, in pixels."""

    step: StepPublic
    depth: int
    x: int
    width: int
    y: int
    input_json: str
    output_json: str


def _json(value: Any, limit: int = 4000) -> str:
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "\n… (cut at 4,000 characters)"


def _depth(path: str) -> int:
    """How deep a step sits: ``a``, ``lanes.a`` and ``each[2].a`` are at depth 0, 1 and 1."""
    return path.count(".")


def lanes(steps: list[StepPublic], start: datetime, end: datetime) -> list[Lane]:
    span = max((end - start).total_seconds(), 0.001)
    ordered = sorted(steps, key=lambda s: (s.started_ts or s.finished_ts, s.position, s.path))
    drawn = []
    for row, step in enumerate(ordered):
        began = step.started_ts or step.finished_ts
        x = int((began - start).total_seconds() / span * TIMELINE_W)
        width = max(3, int((step.finished_ts - began).total_seconds() / span * TIMELINE_W))
        drawn.append(
            Lane(
                step,
                _depth(step.path),
                max(0, min(x, TIMELINE_W - 3)),
                min(width, TIMELINE_W),
                row * LANE_H,
                _json(step.input),
                _json(step.output),
            )
        )
    return drawn


@router.get("/executions/{execution_id}")
async def execution_page(request: Request, execution_id: uuid.UUID) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        found = await step_commands.get(execution_id, principal, engine(request), gateway(request))
        definition = await step_commands.definition_of(found.workflow_name, found.workflow_version, engine(request))
        linked = await step_commands.linked(execution_id, principal, engine(request), limit=20)
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    now = datetime.now(UTC)
    start = found.started_ts or found.created_ts
    end = found.finished_ts or now
    drawn = lanes(found.steps, start, end)
    open_run = found.status in step_commands.OPEN
    mine = principal.role == "admin" or found.created_by == principal.name
    may_act = can(principal, "operator") and mine
    return page(
        "execution.html",
        principal=principal,
        csrf=csrf,
        execution=found,
        lanes=drawn,
        width=TIMELINE_W,
        height=max(len(drawn), 1) * LANE_H,
        lane_h=LANE_H,
        took=(end - start).total_seconds(),
        open_run=open_run,
        may_cancel=may_act and open_run,
        may_pause=may_act and open_run,
        paused=found.paused,
        base=f"/ui/executions/{found.id}",
        may_retry=can(principal, "operator") and mine and not open_run,
        linked=linked.items,
        top_steps=[s.name for s in definition.steps] if definition else [],
        failed_step=next((s.name for s in found.steps if s.status == "failed" and s.path == s.name), None),
        input_json=_json(found.input),
        context_json=_json(found.context),
        output_json=_json(found.output) if found.output is not None else None,
        **flash(request),
    )


@router.post("/executions/{execution_id}/cancel")
async def cancel_execution(request: Request, execution_id: uuid.UUID) -> Response:
    principal, csrf = await viewer(request)
    await read_form(request, csrf)
    here = f"/ui/executions/{execution_id}"
    try:
        await step_commands.cancel(execution_id, principal, engine(request), gateway(request))
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, here, note="Cancelling: the step under way is stopped and the execution ends cancelled.")


@router.post("/executions/{execution_id}/retry")
async def retry_execution(request: Request, execution_id: uuid.UUID) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = f"/ui/executions/{execution_id}"
    try:
        edited = {part: _edited(form, part) for part in ("input", "context")}
    except ValueError as exc:
        return back(request, here, error=str(exc))
    try:
        body = RetryRequest(from_step=form.get("from_step", ""), **{k: v for k, v in edited.items() if v is not None})
    except ValueError:
        return back(request, here, error="Choose the step to re-run from.")
    try:
        created = await step_commands.retry(
            execution_id, body, principal, engine(request), gateway(request), request.app.state.settings
        )
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    changed = (
        " with edited " + " and ".join(k for k, v in edited.items() if v is not None) if any(edited.values()) else ""
    )
    return back(request, f"/ui/executions/{created.id}", note=f"Re-running from {body.from_step}{changed}.")


def _edited(form: dict[str, str], part: str) -> dict[str, Any] | None:
    """A JSON object typed into the re-run form, or None when the field was left as it was."""
    text = (form.get(part) or "").strip()
    if not text or form.get(f"{part}_original", "").strip() == text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"The {part} is not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    if not isinstance(value, dict):
        raise ValueError(f'The {part} must be a JSON object, like {{"customer": "Ann"}}.')
    return value


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: str) -> HTMLResponse:
    principal, csrf = await viewer(request)
    try:
        session = await session_commands.get(session_id[:100], principal, engine(request), gateway(request))
        made = await session_commands.calls(session.session_id, principal, engine(request))
    except ApiError as exc:
        return page("message.html", status=exc.status, principal=principal, csrf=csrf, message=exc.detail)
    open_ = session.completed_ts is None
    mine = can(principal, "operator") and (principal.role == "admin" or session.created_by == principal.name)
    return page(
        "session.html",
        principal=principal,
        csrf=csrf,
        session=session,
        calls=made.items,
        more=made.next_cursor is not None,
        final_json=_json(session.final_output) if session.final_output is not None else None,
        may_cancel=open_ and mine,
        may_pause=open_ and mine,
        paused=session.paused,
        base=f"/ui/sessions/{session.session_id}",
        stages=stages(list((session.state or {}).get("selected") or [])),
        may_fork=can(principal, "operator"),
        **flash(request),
    )


@router.post("/sessions/{session_id}/cancel")
async def cancel_session(request: Request, session_id: str) -> Response:
    principal, csrf = await viewer(request)
    await read_form(request, csrf)
    here = f"/ui/sessions/{session_id[:100]}"
    try:
        await session_commands.cancel(session_id[:100], principal, engine(request), gateway(request))
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, here, note="Cancelling: the session stops after the call under way.")


@router.post("/sessions/{session_id}/fork")
async def fork_session(request: Request, session_id: str) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    here = f"/ui/sessions/{session_id[:100]}"
    try:
        body = SessionFork(from_stage=int(form.get("from_stage", "")), goal=(form.get("goal") or "").strip() or None)
    except ValueError:
        return back(request, here, error="Choose the stage to fork from, and a goal of at least 3 characters.")
    try:
        forked = await session_commands.fork(
            session_id[:100],
            body,
            principal,
            engine(request),
            gateway(request),
            request.app.state.settings,
            request.app.state.rate_limits,
        )
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, f"/ui/sessions/{forked.session_id}", note=f"Forked from stage {body.from_stage}.")


# The run kinds that pause: the command pair of each, and how its id is read from the path.
_PAUSERS: dict[str, tuple[Any, Any, Any]] = {
    "instances": (instance_commands.pause, instance_commands.resume, uuid.UUID),
    "executions": (step_commands.pause, step_commands.resume, uuid.UUID),
    "sessions": (session_commands.pause, session_commands.resume, lambda text: text[:100]),
}


@router.post("/{kind}/{run_id}/pause")
async def pause_run(request: Request, kind: str, run_id: str) -> Response:
    return await _pause_change(request, kind, run_id, "pause")


@router.post("/{kind}/{run_id}/resume")
async def resume_run(request: Request, kind: str, run_id: str) -> Response:
    return await _pause_change(request, kind, run_id, "resume")


async def _pause_change(request: Request, kind: str, run_id: str, verb: str) -> Response:
    principal, csrf = await viewer(request)
    form = await read_form(request, csrf)
    if kind not in _PAUSERS:
        return page("message.html", status=404, principal=principal, csrf=csrf, message="No such page.")
    pause, resume, parse = _PAUSERS[kind]
    try:
        reference = parse(run_id)
    except ValueError:
        return page("message.html", status=404, principal=principal, csrf=csrf, message="No such run.")
    here = f"/ui/{kind}/{reference}"
    try:
        if verb == "pause":
            await pause(
                reference, PauseCreate(reason=form.get("reason", "")), principal, engine(request), gateway(request)
            )
        else:
            comment = (form.get("comment") or "").strip() or None
            await resume(reference, ResumeCreate(comment=comment), principal, engine(request), gateway(request))
    except ValueError:
        return back(request, here, error="Say why it is paused (1 to 500 characters).")
    except ApiError as exc:
        return back(request, here, error=exc.detail)
    return back(request, here, note="Paused." if verb == "pause" else "Resumed.")
