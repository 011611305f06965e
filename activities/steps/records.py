"""Activities the step interpreter runs around its tools: the execution's records (begin, one record
per step it records itself, finish), CEL conditions (in the evaluator's child process, with its time
and size budget), the agents and child definitions it calls; and automation's ``start_workflow``
action, which belongs here because this domain sits above automation."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.agents import store as agents
from core.agents.registry import AgentSpec
from core.automation.actions import StartWorkflowAction, StartWorkflowOutput
from core.automation.evaluator import ConditionEvaluator
from core.automation.rendering import event_context, render_template
from core.automation.rules import ActionInput
from core.automation.templating import TemplateRenderError
from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications
from core.people import directory
from core.platform import errors
from core.platform.settings import Settings
from core.platform.temporal import start_options
from core.steps import store
from core.steps.contracts import (
    BeginInput,
    ConditionInput,
    ConditionResult,
    DefinitionFound,
    DefinitionRef,
    FinishInput,
    PauseChange,
    RunInput,
    StepRecordInput,
    TaskAssigned,
    TaskChange,
    TaskOpen,
    WaitInput,
    execution_workflow_id,
)
from core.steps.starting import INTERPRETER, begin_input, execution_attributes, execution_id_for, run_input, summary


class AgentFound(AgentSpec):
    """An active agent's snapshot for an agent.call step (``problem`` when there is none)."""

    problem: str | None = None


class StepRunActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings, evaluator: ConditionEvaluator) -> None:
        self._engine = engine
        self._settings = settings
        self._evaluator = evaluator

    @activity.defn(name="steps.begin")
    async def begin(self, data: BeginInput) -> None:
        async with self._engine.begin() as conn:
            await store.begin(conn, data)

    @activity.defn(name="steps.record")
    async def record(self, data: StepRecordInput) -> None:
        async with self._engine.begin() as conn:
            await store.record_step(conn, data)

    @activity.defn(name="steps.finish")
    async def finish(self, data: FinishInput) -> None:
        async with self._engine.begin() as conn:
            await store.finish(conn, data)

    @activity.defn(name="steps.pause_change")
    async def pause_change(self, data: PauseChange) -> None:
        async with self._engine.begin() as conn:
            await store.set_paused(conn, data)

    @activity.defn(name="steps.wait_begin")
    async def wait_begin(self, data: WaitInput) -> None:
        async with self._engine.begin() as conn:
            await store.add_wait(conn, data)

    @activity.defn(name="steps.wait_end")
    async def wait_end(self, data: WaitInput) -> None:
        async with self._engine.begin() as conn:
            await store.remove_wait(conn, data)

    @activity.defn(name="steps.task_open")
    async def task_open(self, data: TaskOpen) -> TaskAssigned | None:
        """The task's row and a notification to its assignee, in one transaction (once). A task shared
        among a role's people goes to the one distribution chooses, and a task of someone out of office to
        their delegate: who it went to is returned (None: its assignee, unchanged). A repeated attempt
        answers the row's assignee."""
        async with self._engine.begin() as conn:
            existing = await store.get_task(conn, uuid.UUID(data.task_id))
            if existing is not None:
                if existing.assignee == data.assignee:
                    return None
                return TaskAssigned(assignee=existing.assignee, on_behalf_of=existing.on_behalf_of)
            now = datetime.now(UTC)
            choice = await directory.choose(conn, data.distribute, now) if data.distribute is not None else None
            if choice is None:
                choice = await directory.direct(conn, data.assignee, now)
            assigned = None
            if choice.assignee != data.assignee:
                assigned = TaskAssigned(assignee=choice.assignee, on_behalf_of=choice.on_behalf_of)
                data = data.model_copy(update=assigned.model_dump())
                await directory.log_change(
                    conn, item=f"task:{data.task_id}", from_assignee=None, choice=choice, actor="distribution"
                )
            if await store.open_task(conn, data):
                what = "Decide" if data.kind == "task" else "A step failed: retry, skip or abort"
                text = f"{data.description or data.title} (step workflow {data.workflow}; decide it in the inbox)"
                await self._notify(
                    conn, data.task_id, "opened", data.assignee, f"{what}: {data.title}", text, datetime.now(UTC)
                )
            return assigned

    @activity.defn(name="steps.task_change")
    async def task_change(self, data: TaskChange) -> None:
        """Remind the assignee, escalate to the escalation target (who may then decide too), or close."""
        async with self._engine.begin() as conn:
            task = await store.change_task(conn, data)
            if task is None or data.change in ("decided", "cancelled"):
                return
            recipient = (task.escalate_to or task.assignee) if data.change == "escalated" else task.assignee
            subject = {"reminded": "Reminder: ", "escalated": "Escalated to you: ", "reassigned": "Assigned to you: "}[
                data.change
            ] + task.title
            text = f"{task.description or task.title} (step workflow {task.workflow_name}; decide it in the inbox)"
            await self._notify(conn, data.task_id, data.change, recipient, subject, text, data.ts)

    @staticmethod
    async def _notify(
        conn: AsyncConnection, task_id: str, change: str, recipient: str, subject: str, text: str, ts: datetime
    ) -> None:
        await insert_notifications(
            conn,
            [NotificationSpec(recipient=recipient, template=f"step_task_{change}", subject=subject, body=text)],
            dedupe_prefix=f"step-task:{task_id}:{change}",
            source=f"step-task:{task_id}",
            entity_id=None,
            ts=ts,
        )

    @activity.defn(name="steps.condition")
    async def condition(self, data: ConditionInput) -> ConditionResult:
        [outcome] = await self._evaluator.evaluate_all([(data.expression, data.variables)])
        if isinstance(outcome, bool):
            return ConditionResult(value=outcome)
        return ConditionResult(error=str(outcome))

    @activity.defn(name="steps.agent")
    async def agent(self, name: str) -> AgentFound:
        async with self._engine.connect() as conn:
            found = await agents.active_agent(conn, name)
        if found is None:
            return AgentFound(
                agent_name=name,
                agent_type="",
                capabilities=[],
                system_prompt="",
                output_schema={},
                problem=f"agent '{name}' is not an active agent of the registry",
            )
        return AgentFound(**found.model_dump())

    @activity.defn(name="steps.definition")
    async def definition(self, ref: DefinitionRef) -> DefinitionFound:
        async with self._engine.begin() as conn:
            stored, refused = await store.runnable(conn, ref.workflow, ref.version)
            if stored is not None and refused is None and ref.root_execution_id and ref.child_execution_id:
                refused = await store.reserve_spawn(
                    conn,
                    uuid.UUID(ref.root_execution_id),
                    uuid.UUID(ref.child_execution_id),
                    ref.spawn_limit,
                )
        if stored is None or refused is not None:
            return DefinitionFound(problem=refused)
        return DefinitionFound(version=stored.version, definition=stored.definition)

    # ---------------------------------------------------------------- the rule action

    @activity.defn(name="action.start_workflow")
    async def start_workflow(self, data: ActionInput) -> StartWorkflowOutput:
        """Start exactly one execution for (rule, event, action): its id derives from them, and a repeat
        joins the execution already started."""
        action = data.action
        assert isinstance(action, StartWorkflowAction)
        event = data.event
        execution_id = execution_id_for("rule", data.rule.id, event.id, data.action_index)
        # An experiment routes by the event's entity: one customer keeps its variant.
        key = event.entity_id or execution_id
        async with self._engine.connect() as conn:
            stored, refused, arm = await store.routed(conn, action.workflow, None, key)
            context = await event_context(conn, data.rule, data.event)
        if stored is None or refused is not None:
            raise errors.ACTION_INVALID.error(f"start_workflow: {refused}")
        limit = self._settings.template_max_output_chars
        try:
            rendered_input = _render_typed(action.input, context, limit)
            rendered_context = _render_typed(action.context, context, limit)
        except TemplateRenderError as exc:
            raise errors.ACTION_INVALID.error(str(exc)) from exc
        run = run_input(
            stored,
            execution_id,
            self._settings,
            variant=arm,
            input=rendered_input,
            context=rendered_context,
            trigger={
                "kind": "rule",
                "rule_id": data.rule.id,
                "rule_name": data.rule.workflow_name,
                "event_id": event.id,
                "event_kind": event.event_kind,
                "entity_id": event.entity_id,
            },
            created_by=f"rule:{data.rule.id}",
        )
        await start_execution(activity.client(), self._settings, run)
        async with self._engine.begin() as conn:
            await store.accept(conn, begin_input(run))
        return StartWorkflowOutput(execution_id=execution_id, workflow=stored.name, version=stored.version)


_WHOLE_VARIABLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}$")
_NOTHING = object()


def _lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _NOTHING
        value = value[key]
    return value


def _render_typed(value: Any, context: dict[str, Any], limit: int) -> Any:
    """An execution's input from the rule's templates: a value that is exactly one ``{{ variable }}``
    keeps the variable's type (a number stays a number, as a whole ``${…}`` does in steps); any other
    template renders to text."""
    if isinstance(value, str):
        whole = _WHOLE_VARIABLE.match(value)
        if whole and (found := _lookup(whole.group(1), context)) is not _NOTHING:
            return found
        return render_template(value, context, limit)
    if isinstance(value, dict):
        return {key: _render_typed(item, context, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_typed(item, context, limit) for item in value]
    return value


async def start_execution(client: Client, settings: Settings, run: RunInput) -> None:
    """Start the interpreter for ``run``; a repeat with the same id joins the one started."""
    try:
        await client.start_workflow(
            INTERPRETER,
            run,
            **start_options(
                settings,
                execution_workflow_id(run.execution_id),
                execution_attributes([run.workflow]),
                summary(run),
                activity.info().task_queue,
            ),
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and closed already: this event's execution exists
