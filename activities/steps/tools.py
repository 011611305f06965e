"""The step tools' activities (``tool.<name>``), one attempt each.

Every attempt is keyed by (execution, step path). A tool that changes the database does it in one
transaction with its step record, under a lock of that key, so an attempt repeated after a crash or a
time-out finds the record and returns it without repeating the effect. A tool with an outside effect
(e-mail, HTTP, MCP) looks for the record first, acts, then records; it carries a stable id (the
Message-ID, the webhook-id) so that the rare repeat after a crash between acting and recording is
recognisable by the receiver.

A tool's own failure is raised non-retryable, with details saying whether the step may be tried again;
the interpreter applies the step's retry settings (docs/decisions/0010-step-workflows.md).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.agents import store as agents_store
from core.effects import entities as entity_effects
from core.effects import ledger, messages
from core.effects.failures import EffectFailed
from core.effects.http import Delivery, exchange
from core.effects.ssrf import AllowList
from core.entities import store as entities
from core.entities.contracts import limits_of
from core.platform import breakers, errors
from core.platform.breakers import FailureKind
from core.platform.ids import derived_id
from core.platform.settings import Settings
from core.platform.temporal import retrieve_start_error, start_options
from core.policy import store as policy_store
from core.policy.contracts import Action, CheckRequest, Subject
from core.policy.gate import gate
from core.process import instances
from core.process.contracts import InstanceView, TransitionRequest
from core.process.ids import PROCESS_WORKFLOW, TRANSITION, WAIT_READY, process_workflow_id
from core.process.policies import transition_request
from core.process.starting import StartRefused, prepare_start
from core.steps import store
from core.steps.contracts import MAX_STEP_OUTPUT_BYTES, ToolCall, json_size
from core.steps.mcp import McpCatalogue, McpUnavailable, call_tool
from core.steps.tools import (
    STEP_TOOLS,
    EmailSendOutput,
    EmailSendParams,
    EntityCreateParams,
    EntityGetParams,
    EntityLinkOutput,
    EntityLinkParams,
    EntityOutput,
    EntityUpdateParams,
    HttpRequestOutput,
    HttpRequestParams,
    InstanceOutput,
    InstanceStartParams,
    InstanceTransitionParams,
    McpCallOutput,
    NotifySendOutput,
    NotifySendParams,
    ScriptRunOutput,
    ScriptRunParams,
)

M = TypeVar("M", bound=BaseModel)


def step_failed(message: str, *, retryable: bool, kind: FailureKind | None = None) -> ApplicationError:
    """A failed attempt: never retried by Temporal; ``retryable`` tells the interpreter whether the
    step's retry settings may try again (a refused request or invalid data will not get better).
    ``kind`` classifies it (seed 004): transient (retried, counted by the target's breaker), permanent,
    or business (the target answered that it will not)."""
    kind = kind or ("transient" if retryable else "permanent")
    return errors.STEP_FAILED.error(message, {"retryable": retryable, "kind": kind}, retryable=False)


def _failure_kind(exc: ApplicationError) -> FailureKind | None:
    details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
    kind = details.get("kind")
    return kind if kind in ("transient", "permanent", "business") else None


def _params(call: ToolCall, model: type[M]) -> M:
    try:
        return model.model_validate(call.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise step_failed(f"{call.tool}: the resolved params are invalid: {problems}", retryable=False) from exc


def _entity(snapshot: dict[str, Any]) -> EntityOutput:
    return EntityOutput.model_validate(snapshot)


class StepToolActivities:
    """Built in worker.py with the engine, settings and the process's MCP catalogue."""

    def __init__(self, engine: AsyncEngine, settings: Settings, mcp: McpCatalogue) -> None:
        self._engine = engine
        self._settings = settings
        self._mcp = mcp
        self._allow = AllowList(settings.allow_list(), public=settings.webhook_public_destinations)
        self._limits = limits_of(settings)

    # ---------------------------------------------------------------- the ledger (core/effects/ledger.py)

    async def _in_transaction(
        self, call: ToolCall, output: type[M], perform: Callable[[AsyncConnection], Awaitable[M]]
    ) -> M:
        """A database effect and its step record in one transaction, under the step's lock."""

        async def bounded(conn: AsyncConnection) -> M:
            await self.allowed(call)
            return await self._bounded(call, _told(call, perform(conn)))

        return await ledger.once_in_transaction(self._engine, self._ledger(call), output, bounded)

    async def _outside(
        self, call: ToolCall, output: type[M], perform: Callable[[], Awaitable[M]], *, timed: bool = True
    ) -> M:
        """An outside effect: skipped if recorded, else done and then recorded. ``timed=False``: ``perform``
        bounds its own time (inside a breaker, so that a time-out counts as the target's failure)."""

        async def checked(_: AsyncConnection) -> None:
            await self.allowed(call)

        async def bounded(_: None) -> M:
            return await self._bounded(call, _told(call, perform()), timed=timed)

        return await ledger.once_outside(self._engine, self._ledger(call), output, checked, bounded)

    @staticmethod
    def _ledger(call: ToolCall) -> ledger.Ledger:
        """A step's record, or an acting agent's tool-call row in the agent log."""
        if call.agent_key is None:
            return store.StepLedger(call)
        return agents_store.ToolLedger(
            session_id=call.agent_session or call.execution_id,
            agent=call.agent or "",
            key=call.agent_key,
            tool=call.tool,
            arguments=call.params,
            started=call.started_ts,
        )

    @activity.defn(name="tool.policy")
    async def policy(self, call: ToolCall) -> None:
        """The approval policy alone, for a step tool whose effect is not one of these activities
        (agent.call: the model's call or the acting agent's loop). Raises as ``allowed`` does."""
        await self.allowed(call)

    async def allowed(self, call: ToolCall) -> None:
        """The approval policy before the effect (core/policy/gate.py), with the agent or the step workflow
        as the one who acts."""
        subject = Subject(kind="agent", name=call.agent) if call.agent else Subject(kind="workflow", name=call.workflow)
        context = (
            {"execution_id": call.execution_id, "path": call.path}
            if call.agent is None
            else {"session_id": call.agent_session, "call": call.agent_key}
        )
        also = await self._as_transition(call, subject) if call.tool == "instance.transition" else None
        await gate(
            self._engine,
            CheckRequest(subject=subject, action=Action(kind="tool", name=call.tool), arguments=call.params),
            key=self._ledger(call).lock_key,
            context=context,
            granted=call.approval_id,
            title=f"{subject.name} wants to call {call.tool}",
            also=also,
        )

    async def _as_transition(self, call: ToolCall, subject: Subject) -> CheckRequest | None:
        """An instance.transition is also a transition: the template's ``transition`` policies decide it as
        they decide a person's move through the API (core/process/policies.py). None while there are none."""
        params = _params(call, InstanceTransitionParams)
        async with self._engine.connect() as conn:
            if not await policy_store.active(conn, "transition"):
                return None
            asked = await transition_request(conn, params.instance_id, params.to_state_id, params.fields, subject)
        return None if asked is None else asked.request

    @staticmethod
    async def _timed(call: ToolCall, work: Awaitable[M]) -> M:
        """The tool's result within the step's time; past it, a transient failure at once. The work is
        cancelled but its clean-up is not waited for: an MCP stdio server's shutdown (close stdin, two
        seconds' grace, then kill) would otherwise overrun timeoutMs by those seconds (issue 20)."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=call.timeout_ms / 1000)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        _winding_down.add(task)
        task.add_done_callback(_wound_down)
        raise step_failed(f"{call.tool} did not finish within {call.timeout_ms} ms", retryable=True)

    @classmethod
    async def _bounded(cls, call: ToolCall, work: Awaitable[M], *, timed: bool = True) -> M:
        """The tool's result within the step's time and its output within MAX_STEP_OUTPUT_BYTES (checked
        before anything is recorded, so the database and Temporal never disagree about the step)."""
        result = await (cls._timed(call, work) if timed else work)
        size = json_size(result.model_dump(mode="json"))
        if size > MAX_STEP_OUTPUT_BYTES:
            raise step_failed(
                f"the output of step '{call.path}' ({call.tool}) is {size} bytes; a step's output may be at most "
                f"{MAX_STEP_OUTPUT_BYTES} bytes. Nothing was recorded for the step: ask the tool for less",
                retryable=False,
            )
        return result

    async def _through_breaker(self, target: str, call: ToolCall, work: Callable[[], Awaitable[M]]) -> M:
        """Call ``target`` only if its breaker lets the call through (core/platform/breakers.py), within the
        step's time: the time limit is inside the breaker, so a time-out counts as the target's failure
        (outside it, the breaker only saw a cancellation)."""
        return await breakers.call_through(
            self._engine,
            target,
            breakers.policy_of(self._settings, target),
            lambda: self._timed(call, work()),
            transient=lambda exc: (
                exc.message if isinstance(exc, ApplicationError) and _failure_kind(exc) == "transient" else None
            ),
            refuse=lambda admission: step_failed(breakers.refusal_message(target, admission), retryable=True),
        )

    def _actor(self, call: ToolCall) -> str:
        if call.agent is not None:
            return f"agent:{call.agent}:{call.agent_session}"
        return f"workflow:{call.workflow}:{call.execution_id}"

    # ---------------------------------------------------------------- entities

    @activity.defn(name="tool.entity.get")
    async def entity_get(self, call: ToolCall) -> EntityOutput:
        params = _params(call, EntityGetParams)

        async def perform() -> EntityOutput:
            async with self._engine.connect() as conn:
                return _entity(await entity_effects.live_entity(conn, params.id))

        return await self._outside(call, EntityOutput, perform)

    @activity.defn(name="tool.entity.create")
    async def entity_create(self, call: ToolCall) -> EntityOutput:
        params = _params(call, EntityCreateParams)

        async def perform(conn: AsyncConnection) -> EntityOutput:
            parent = None
            if params.parent_id is not None:
                found = await entity_effects.live_entity(conn, params.parent_id)
                parent = (found["entity_type"], params.parent_id)
            created = await entity_effects.create_entity(
                conn,
                entity_id=derived_id("step-entity", call.execution_id, call.path),
                entity_type=params.entity_type,
                name=params.name,
                status=params.status,
                fields=params.fields,
                actor=self._actor(call),
                parent=parent,
                limits=self._limits,
            )
            return _entity(created)

        return await self._in_transaction(call, EntityOutput, perform)

    @activity.defn(name="tool.entity.update")
    async def entity_update(self, call: ToolCall) -> EntityOutput:
        params = _params(call, EntityUpdateParams)

        async def perform(conn: AsyncConnection) -> EntityOutput:
            changed = await entity_effects.update_entity(
                conn,
                params.id,
                actor=self._actor(call),
                limits=self._limits,
                name=params.name,
                status=params.status,
                set_fields=params.fields,
                unset_fields=params.unset,
            )
            return _entity(changed)

        return await self._in_transaction(call, EntityOutput, perform)

    @activity.defn(name="tool.entity.link")
    async def entity_link(self, call: ToolCall) -> EntityLinkOutput:
        params = _params(call, EntityLinkParams)

        async def perform(conn: AsyncConnection) -> EntityLinkOutput:
            parent = await entity_effects.live_entity(conn, params.parent_id)
            child = await entity_effects.live_entity(conn, params.child_id)
            await entities.link(
                conn,
                parent_type=parent["entity_type"],
                parent_id=params.parent_id,
                child_type=child["entity_type"],
                child_id=params.child_id,
                ts=datetime.now(UTC),
            )
            return EntityLinkOutput(parent_id=str(params.parent_id), child_id=str(params.child_id))

        return await self._in_transaction(call, EntityLinkOutput, perform)

    # ---------------------------------------------------------------- messages

    @activity.defn(name="tool.notify.send")
    async def notify_send(self, call: ToolCall) -> NotifySendOutput:
        params = _params(call, NotifySendParams)

        async def perform(conn: AsyncConnection) -> NotifySendOutput:
            await messages.notify(
                conn,
                recipients=list(params.recipients),
                template="workflow",
                subject=params.subject,
                body=params.body,
                dedupe_prefix=f"workflow:{call.execution_id}:{call.path}",
                source=f"workflow:{call.workflow}",
                entity_id=params.entity_id,
            )
            return NotifySendOutput(recipients=list(params.recipients), subject=params.subject)

        return await self._in_transaction(call, NotifySendOutput, perform)

    @activity.defn(name="tool.email.send")
    async def email_send(self, call: ToolCall) -> EmailSendOutput:
        params = _params(call, EmailSendParams)
        message_id = f"<{derived_id('step-email', call.execution_id, call.path)}@trellis>"

        async def perform() -> EmailSendOutput:
            await messages.send_email(
                self._settings, to=params.to, subject=params.subject, body=params.body, message_id=message_id
            )
            return EmailSendOutput(to=params.to, message_id=message_id)

        return await self._outside(call, EmailSendOutput, perform)

    # ---------------------------------------------------------------- http

    @activity.defn(name="tool.http.request")
    async def http_request(self, call: ToolCall) -> HttpRequestOutput:
        params = _params(call, HttpRequestParams)
        webhook_id = f"msg_{derived_id('step-http', call.execution_id, call.path).hex}"
        secret = None
        if params.sign is not None:
            secret = self._settings.webhook_secrets.get(params.sign)
            if secret is None:
                raise step_failed(
                    f"http.request: sign names the secret '{params.sign}', which TRELLIS_WEBHOOK_SECRETS does not "
                    "define",
                    retryable=False,
                )
        body = b"" if params.body is None else json.dumps(params.body, separators=(",", ":"), default=str).encode()

        async def perform() -> HttpRequestOutput:
            delivery = Delivery(
                url=params.url,
                method=params.method,
                headers=params.headers,  # the authored secret references replace theirs when sending
                body=body,
                webhook_id=webhook_id,
                secret=secret,
                timeout_seconds=call.timeout_ms / 1000,
                secret_headers=call.secret_headers,
            )
            try:
                answer = await exchange(
                    delivery,
                    self._allow,
                    secrets=self._settings.webhook_secrets,
                    max_response_bytes=self._settings.webhook_max_response_bytes,
                )
            except ApplicationError as exc:
                status = exc.details[0].get("status") if exc.details and isinstance(exc.details[0], dict) else None
                if status is not None and params.expect_status and status in params.expect_status:
                    return HttpRequestOutput(status=status, body=None, truncated=False, webhook_id=webhook_id)
                raise step_failed(
                    f"http.request: {exc.message}", retryable=exc.type == errors.WEBHOOK_FAILED.type
                ) from exc
            text = answer.body.decode(errors="replace")
            try:
                content: Any = json.loads(text) if text and not answer.truncated else text
            except json.JSONDecodeError:
                content = text
            return HttpRequestOutput(
                status=answer.status, body=content, truncated=answer.truncated, webhook_id=webhook_id
            )

        origin = urlsplit(params.url)
        target = f"http:{origin.scheme}://{origin.hostname}:{origin.port or (443 if origin.scheme == 'https' else 80)}"
        return await self._outside(
            call, HttpRequestOutput, lambda: self._through_breaker(target, call, perform), timed=False
        )

    # ---------------------------------------------------------------- scripts

    @activity.defn(name="tool.script.run")
    async def script_run(self, call: ToolCall) -> ScriptRunOutput:
        params = _params(call, ScriptRunParams)

        async def perform(conn: AsyncConnection) -> ScriptRunOutput:
            result = await entity_effects.run_script(
                conn, params.entity_id, params.script_id, params.params, actor=self._actor(call), limits=self._limits
            )
            return ScriptRunOutput(script_id=params.script_id, result=result)

        return await self._in_transaction(call, ScriptRunOutput, perform)

    # ---------------------------------------------------------------- process instances

    @activity.defn(name="tool.instance.start")
    async def instance_start(self, call: ToolCall) -> InstanceOutput:
        params = _params(call, InstanceStartParams)
        instance_id = str(derived_id("instance", "step", call.execution_id, call.path))

        async def perform() -> InstanceOutput:
            async with self._engine.connect() as conn:
                try:
                    start = await prepare_start(
                        conn, params, instance_id=instance_id, actor=self._actor(call), settings=self._settings
                    )
                except StartRefused as refused:
                    raise step_failed(f"instance.start: {refused.message}", retryable=False) from refused
            options = start_options(
                self._settings, start.workflow_id, start.search_attributes, start.summary, activity.info().task_queue
            )
            operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                PROCESS_WORKFLOW, start.data, **options
            )
            try:
                view = await activity.client().execute_update_with_start_workflow(
                    WAIT_READY, start_workflow_operation=operation, result_type=InstanceView
                )
            except WorkflowAlreadyStartedError:
                view = await self._finished_instance(instance_id)  # started, and already finished
            except WorkflowUpdateFailedError as exc:
                raise _refused_by_instance("instance.start", exc) from exc
            except RPCError as exc:
                if exc.status != RPCStatusCode.ALREADY_EXISTS:
                    raise step_failed(
                        f"instance.start: Temporal did not answer: {exc.message}", retryable=True
                    ) from exc
                view = await self._finished_instance(instance_id)
            finally:
                retrieve_start_error(operation)
            return _instance(view)

        return await self._outside(call, InstanceOutput, perform)

    @activity.defn(name="tool.instance.transition")
    async def instance_transition(self, call: ToolCall) -> InstanceOutput:
        """One update with an id derived from (execution, step): Temporal applies an update id once, so an
        attempt repeated after a crash between the transition and its record gets the first answer."""
        params = _params(call, InstanceTransitionParams)
        request = TransitionRequest(
            to_state_id=params.to_state_id,
            comment=params.comment,
            fields=params.fields,
            actor=self._actor(call),
            actor_role="operator",
        )
        update_id = f"step-{self._ledger(call).lock_key}"

        async def send(workflow_id: str) -> InstanceView:
            handle = activity.client().get_workflow_handle(workflow_id)
            try:
                return await handle.execute_update(TRANSITION, request, id=update_id, result_type=InstanceView)
            except WorkflowUpdateFailedError as exc:
                raise _refused_by_instance("instance.transition", exc) from exc

        async def perform() -> InstanceOutput:
            try:
                return _instance(await send(process_workflow_id(params.instance_id)))
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise step_failed(
                        f"instance.transition: Temporal did not answer: {exc.message}", retryable=True
                    ) from exc
            # No such running workflow: an instance of the earlier id scheme, or one that has finished.
            async with self._engine.connect() as conn:
                fallback = await instances.update_fallback(conn, params.instance_id)
                view = await instances.get_view(conn, params.instance_id)
            if not fallback.found or view is None:
                raise step_failed(f"instance.transition: no process instance {params.instance_id}", retryable=False)
            if fallback.legacy_workflow_id is not None:
                return _instance(await send(fallback.legacy_workflow_id))
            last = view.state_history[-1] if view.state_history else None
            if last is not None and last.to == params.to_state_id and last.actor == request.actor:
                return _instance(view)  # this step's own transition finished the instance before it was recorded
            raise step_failed(f"instance.transition: {fallback.refusal}", retryable=False)

        return await self._outside(call, InstanceOutput, perform)

    async def _finished_instance(self, instance_id: str) -> InstanceView:
        async with self._engine.connect() as conn:
            view = await instances.get_view(conn, uuid.UUID(instance_id))
        if view is None:
            raise step_failed(f"instance.start: instance {instance_id} has no record yet", retryable=True)
        return view

    # ---------------------------------------------------------------- MCP

    @activity.defn(name="tool.mcp")
    async def mcp(self, call: ToolCall) -> McpCallOutput:
        server_name, _, tool = call.tool.partition(".")
        server = self._settings.mcp_servers.get(server_name)
        if server is None:
            raise step_failed(
                f"{call.tool}: no MCP server '{server_name}' is declared (TRELLIS_MCP_SERVERS)", retryable=False
            )

        async def perform() -> McpCallOutput:
            try:
                answer = await call_tool(server_name, server, self._settings, tool, call.params, call.timeout_ms / 1000)
            except McpUnavailable as exc:  # a refusal (401/403) will not get better by trying again
                raise step_failed(str(exc), retryable=not exc.permanent) from exc
            if answer.is_error:  # the tool ran and said no: a business error, not the server's health
                raise step_failed(
                    f"{call.tool} answered with an error: {str(answer.result)[:2000]}", retryable=False, kind="business"
                )
            return McpCallOutput(result=answer.result, content=answer.content, json=answer.json)

        return await self._outside(
            call, McpCallOutput, lambda: self._through_breaker(f"mcp:{server_name}", call, perform), timed=False
        )


# Tools cancelled at their time limit and still cleaning up (held so they are not collected mid-way).
_winding_down: set[asyncio.Future[Any]] = set()


def _wound_down(task: asyncio.Future[Any]) -> None:
    _winding_down.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a clean-up error of abandoned work is not worth a warning


def _instance(view: InstanceView) -> InstanceOutput:
    return InstanceOutput.model_validate(view.model_dump(include=set(InstanceOutput.model_fields) - {"already_done"}))


def _refused_by_instance(tool: str, exc: WorkflowUpdateFailedError) -> ApplicationError:
    """The instance refused the update (not an allowed next state, finished, another transition in
    progress): only the last may succeed when the step is tried again."""
    cause = exc.cause
    message = getattr(cause, "message", None) or str(cause or exc)
    in_progress = isinstance(cause, ApplicationError) and cause.type == errors.TRANSITION_IN_PROGRESS.type
    return step_failed(f"{tool}: {message}", retryable=in_progress)


async def _told(call: ToolCall, work: Awaitable[M]) -> M:
    """``work``'s result; an effect's failure told as the step's (core/effects/failures.py): the tool's
    name first, retried by the step's settings only when it is transient."""
    try:
        return await work
    except EffectFailed as failed:
        raise step_failed(f"{call.tool}: {failed.message}", retryable=failed.retryable, kind=failed.kind) from failed


def tool_activities(tools: StepToolActivities) -> dict[str, Callable[..., Any]]:
    """Each step tool's activity, by tool name ("mcp" for every MCP tool); agent.call and workflow.run
    are the interpreter's own (the LLM activity and a child workflow)."""
    bound: dict[str, Callable[..., Any]] = {
        "entity.get": tools.entity_get,
        "entity.create": tools.entity_create,
        "entity.update": tools.entity_update,
        "entity.link": tools.entity_link,
        "notify.send": tools.notify_send,
        "email.send": tools.email_send,
        "http.request": tools.http_request,
        "script.run": tools.script_run,
        "instance.start": tools.instance_start,
        "instance.transition": tools.instance_transition,
        "mcp": tools.mcp,
    }
    assert set(bound) - {"mcp"} == set(STEP_TOOLS) - {"agent.call", "workflow.run"}
    return bound
