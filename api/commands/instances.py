"""Process instance commands: start, read, transition, cancel, acknowledge a deadline alert, decide an
approval. Who may decide a gate or acknowledge an alert is the instance workflow's rule (its update
validators answer 403); the roles here are the floor every entry point shares."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands import policies
from api.commands.policies import ApprovalTicket
from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from api.gateway import AlreadyFinished, Gateway, WorkflowNotFound
from core.platform.contracts import Page
from core.platform.ids import derived_id
from core.platform.pauses import PauseCreate, PauseRequest, ResumeCreate, ResumeRequest
from core.platform.settings import Settings
from core.process import instances
from core.process.contracts import (
    MAX_BULK,
    AcknowledgeCreate,
    AcknowledgeRequest,
    BulkPauseCreate,
    BulkPauseResult,
    BulkRefusal,
    CancelCreate,
    CancelRequest,
    DecisionCreate,
    DecisionRequest,
    InstanceCreate,
    InstanceView,
    TransitionCreate,
    TransitionRequest,
)
from core.process.ids import process_workflow_id
from core.process.instances import InstanceRow, InstanceSort
from core.process.starting import StartRefused, prepare_start
from workflows.process.instance import ProcessInstanceWorkflow


async def start(
    body: InstanceCreate,
    principal: Principal,
    engine: AsyncEngine,
    gateway: Gateway,
    settings: Settings,
    idempotency_key: str | None = None,
) -> InstanceView:
    """Start an instance; answers once its start state is recorded (one update-with-start round trip)."""
    allow(principal, "operator", doing="start instances")
    instance_id = (
        str(derived_id("instance", principal.name, body.template_code, idempotency_key))
        if idempotency_key
        else str(uuid.uuid4())
    )
    async with engine.connect() as conn:
        try:
            prepared = await prepare_start(conn, body, instance_id=instance_id, actor=principal.name, settings=settings)
        except StartRefused as refused:
            raise ApiError(422, refused.code, refused.message) from refused
    try:
        return await gateway.start_with_update(
            ProcessInstanceWorkflow.run,
            prepared.data,
            ProcessInstanceWorkflow.wait_ready,
            workflow_id=prepared.workflow_id,
            search_attributes=prepared.search_attributes,
            summary=prepared.summary,
        )
    except AlreadyFinished:
        # A retry (same Idempotency-Key) of an instance that has already finished.
        return await _from_database(engine, uuid.UUID(instance_id))


async def _from_database(engine: AsyncEngine, instance_id: uuid.UUID) -> InstanceView:
    async with engine.connect() as conn:
        view = await instances.get_view(conn, instance_id)
    if view is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    return view


async def get(instance_id: uuid.UUID, principal: Principal, engine: AsyncEngine, gateway: Gateway) -> InstanceView:
    """From the running workflow (authoritative, includes in-flight state), else from the database."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        info = await instances.get_handle_info(conn, instance_id)
    if info is None:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    if info["workflow_status"] == "active":
        live = await gateway.query(info["workflow_id"], ProcessInstanceWorkflow.view)
        if live is not None:
            return live
    return await _from_database(engine, instance_id)


async def _update(
    engine: AsyncEngine,
    instance_id: uuid.UUID,
    send: Callable[[str], Awaitable[InstanceView]],
) -> InstanceView:
    """Send to the derived workflow id; only when no such workflow answers, ask the database why."""
    try:
        return await send(process_workflow_id(instance_id))
    except WorkflowNotFound:
        pass
    async with engine.connect() as conn:
        fallback = await instances.update_fallback(conn, instance_id)
    if not fallback.found:
        raise ApiError(404, "not_found", f"no workflow instance {instance_id}")
    if fallback.legacy_workflow_id is not None:
        try:  # an instance started under the earlier id scheme
            return await send(fallback.legacy_workflow_id)
        except WorkflowNotFound:
            pass
    raise ApiError(409, "instance_finished", fallback.refusal or f"instance {instance_id} has finished")


async def transition(
    instance_id: uuid.UUID, body: TransitionCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView | ApprovalTicket:
    """Move the instance, unless an approval policy denies it (403) or sends it to people first: then the
    approval's ticket, and its workflow performs the transition once approved (api/commands/policies.py)."""
    allow(principal, "operator", doing="move instances")
    ticket = await policies.check_transition(instance_id, body, principal, engine, gateway)
    if ticket is not None:
        return ticket
    request = TransitionRequest(
        to_state_id=body.to_state_id,
        comment=body.comment,
        fields=body.fields,
        actor=principal.name,
        actor_role=principal.role,
    )
    return await _update(
        engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.transition, request)
    )


async def cancel(
    instance_id: uuid.UUID, body: CancelCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView:
    """End an active instance where it stands: it records an ``instance_cancelled`` event, its
    workflow completes, and it takes no transitions afterwards (409). A finished instance is a 409."""
    allow(principal, "operator", doing="cancel instances")
    request = CancelRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _update(engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.cancel, request))


async def acknowledge_deadline(
    instance_id: uuid.UUID, body: AcknowledgeCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView:
    """Take note of the open deadline alert of the instance's current state (the template's owner role,
    or an admin, checked by the workflow); 409 when no alert is open."""
    allow(principal, *READERS)
    request = AcknowledgeRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _update(
        engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.acknowledge, request)
    )


async def decide_approval(
    instance_id: uuid.UUID, body: DecisionCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView:
    """Approve or reject the pending approval of the instance's current state: the gate's roles decide,
    and once it has escalated its escalation targets too (the workflow answers 403 for anyone else)."""
    allow(principal, *READERS)
    request = DecisionRequest(
        decision=body.decision, comment=body.comment, actor=principal.name, actor_role=principal.role
    )
    return await _update(engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.decide, request))


async def pause(
    instance_id: uuid.UUID, body: PauseCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView:
    """Pause an active instance: it takes no transition or decision (409 ``paused``, naming who and why)
    until resumed; its timers keep time and what falls due acts on resume."""
    allow(principal, "operator", doing="pause instances")
    request = PauseRequest(actor=principal.name, actor_role=principal.role, reason=body.reason)
    return await _update(engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.pause, request))


async def resume(
    instance_id: uuid.UUID, body: ResumeCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> InstanceView:
    allow(principal, "operator", doing="resume instances")
    request = ResumeRequest(actor=principal.name, actor_role=principal.role, comment=body.comment)
    return await _update(engine, instance_id, lambda wid: gateway.update(wid, ProcessInstanceWorkflow.resume, request))


async def pause_many(
    body: BulkPauseCreate, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> BulkPauseResult:
    """Pause (or resume) every active instance of a template, or of some of its states, that is not
    already so: at most ``MAX_BULK`` per call (``more`` says to call again). Each instance answers
    for itself; one that moved on or finished meanwhile is counted as refused with its reason."""
    allow(principal, "operator", doing="pause instances" if body.action == "pause" else "resume instances")
    async with engine.connect() as conn:
        rows = await instances.active_matching(
            conn,
            template_code=body.template_code,
            state_ids=body.state_ids,
            paused=body.action == "resume",
            limit=MAX_BULK,
        )
    result = BulkPauseResult(action=body.action, more=len(rows) > MAX_BULK)
    gate = asyncio.Semaphore(8)

    async def one(instance_id: uuid.UUID) -> None:
        async with gate:
            try:
                if body.action == "pause":
                    await pause(
                        instance_id, PauseCreate(reason=body.reason or "bulk pause"), principal, engine, gateway
                    )
                else:
                    await resume(instance_id, ResumeCreate(comment=body.reason), principal, engine, gateway)
                result.changed.append(str(instance_id))
            except ApiError as refused:
                result.refused.append(
                    BulkRefusal(instance_id=str(instance_id), code=refused.error, message=refused.detail)
                )

    await asyncio.gather(*(one(row["id"]) for row in rows[:MAX_BULK]))
    return result


async def listing(
    principal: Principal,
    engine: AsyncEngine,
    *,
    template_code: str | None = None,
    status: str | None = None,
    state_name: str | None = None,
    search: str | None = None,
    stuck: bool = False,
    paused: bool = False,
    sort: InstanceSort = "started",
    variant: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[InstanceRow]:
    """The instance list any reader may see (the console's instances page)."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await instances.instance_list(
            conn,
            template_code=template_code,
            status=status,
            state_name=state_name,
            search=search,
            stuck=stuck,
            paused=paused,
            sort=sort,
            variant=variant,
            limit=limit,
            cursor=cursor,
        )
