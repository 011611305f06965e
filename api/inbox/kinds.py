"""The kinds of inbox items. Each kind lists what is pending for a viewer and routes a decision to the
one update of the workflow that owns the item, through the same code its own endpoint uses, so the
inbox adds no second path to any state change."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands import forecasts as forecast_commands
from api.commands import instances as instance_commands
from api.commands import policies as policy_commands
from api.commands import sessions as session_commands
from api.commands import work as work_commands
from api.deps import Principal
from api.errors import ApiError
from api.gateway import Gateway, WorkflowNotFound
from api.inbox.contracts import Action, Decision, InboxItem
from core.agents import store as agents_store
from core.agents.sessions import SessionDecisionCreate
from core.people import directory
from core.platform import telemetry
from core.policy import store as policy_store
from core.policy.contracts import VoteCreate, deciders
from core.process import forecast_data, instances
from core.process.contracts import AcknowledgeCreate, DecisionCreate, InstanceView, PendingApproval
from core.steps import store as steps_store
from core.steps.contracts import TaskDecisionRequest
from core.work import store as work_store
from core.work.contracts import ItemChange, WorkItemPublic
from core.work.priority import priority_label
from workflows.steps.interpreter import StepWorkflowRun

# A process waiting on an approval blocks its whole instance: it ranks with critical work, and an
# escalated one (its time-out passed) above every snoozed item coming back.
APPROVAL_SCORE, ESCALATED_APPROVAL_SCORE, SESSION_APPROVAL_SCORE = 950, 1050, 900
# An instance past its state's expected time: as urgent as a snoozed item that is due.
DEADLINE_SCORE = 1000
# An instance likely to miss its deadline, before it does: urgent, below what is already late.
AT_RISK_SCORE = 800


class InboxKind(Protocol):
    name: str

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        """Every pending item of this kind the viewer owes (all of them for admins)."""
        ...

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        """Apply ``decision`` through the owning workflow's update; the decided object, as JSON."""
        ...


def _brief(arguments: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(arguments, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def owes(viewer: Principal, assignees: list[str]) -> bool:
    return viewer.role == "admin" or viewer.name in assignees or viewer.role in assignees


def _refuse(kind: str, action: str, allowed: tuple[str, ...]) -> ApiError:
    return ApiError(422, "invalid_action", f"a {kind} item takes {' or '.join(allowed)}, not '{action}'")


async def _instance_of(reference: str, engine: AsyncEngine) -> tuple[uuid.UUID, str, InstanceView]:
    """An instance item's reference '<instance id>:<state id>': the id, the state, and the stored view."""
    instance_text, _, state_text = reference.partition(":")
    instance_id = uuid.UUID(instance_text)
    async with engine.connect() as conn:
        view = await instances.get_view(conn, instance_id)
    if view is None:
        raise ApiError(404, "not_found", f"no instance {instance_id}")
    return instance_id, state_text, view


class ApprovalGates:
    """Approval gates of process instances: decided by a role the gate names (or an admin)."""

    name = "approval"

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            rows = await instances.pending_approvals(conn)
        items = []
        for row in rows:
            gate = PendingApproval.model_validate(row["pending_approval"])
            roles = gate.deciders()
            if not owes(viewer, roles):
                continue
            escalated = gate.escalated
            score = ESCALATED_APPROVAL_SCORE if escalated else APPROVAL_SCORE
            items.append(
                InboxItem(
                    id=f"approval:{row['id']}:{row['current_state_id']}",
                    kind=self.name,
                    title=f"Approve {row['current_state_name']} ({row['template_code']})",
                    entity_id=row["root_entity_id"],
                    entity_name=row["entity_name"],
                    assignee=roles,
                    priority_score=score,
                    priority_label=priority_label(score),
                    due_at=gate.timeout_at,
                    escalated=escalated,
                    link=f"/api/v1/workflow-instance/{row['id']}",
                    actions=["approve", "reject"],
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action not in ("approve", "reject"):
            raise _refuse(self.name, decision.action, ("approve", "reject"))
        instance_id, state_text, view = await _instance_of(reference, engine)
        gate = view.pending_approval
        if gate is None or gate.status != "pending" or str(gate.state_id) != state_text:
            raise ApiError(409, "no_longer_pending", "this approval was decided or the instance moved on")
        # Who may decide (the gate's roles, then its escalation targets) is the workflow's rule: 403 there.
        comment = getattr(decision, "comment", None)
        body = DecisionCreate(decision=decision.action, comment=comment)
        view = await instance_commands.decide_approval(instance_id, body, principal, engine, gateway)
        return view.model_dump(mode="json")


class DeadlineAlerts:
    """Instances that stayed in a state longer than its avg_duration_days: for the template's owner role
    (or an admin), until acknowledged or the instance moves on."""

    name = "deadline"

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            rows = await instances.open_deadline_alerts(conn)
        items = []
        for row in rows:
            owner = row["owner_role"] or "operator"
            if not owes(viewer, [owner]):
                continue
            items.append(
                InboxItem(
                    id=f"deadline:{row['id']}:{row['current_state_id']}",
                    kind=self.name,
                    title=f"Overdue in {row['current_state_name']} ({row['template_code']})",
                    entity_id=row["root_entity_id"],
                    entity_name=row["entity_name"],
                    assignee=[owner],
                    priority_score=DEADLINE_SCORE,
                    priority_label=priority_label(DEADLINE_SCORE),
                    due_at=row["raised_ts"],
                    escalated=True,
                    link=f"/api/v1/workflow-instance/{row['id']}",
                    actions=["acknowledge"],
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action != "acknowledge":
            raise _refuse(self.name, decision.action, ("acknowledge",))
        instance_id, state_text, view = await _instance_of(reference, engine)
        if str(view.current_state.id) != state_text:
            raise ApiError(409, "no_longer_pending", "the instance has moved on from that state")
        body = AcknowledgeCreate(comment=getattr(decision, "comment", None))
        view = await instance_commands.acknowledge_deadline(instance_id, body, principal, engine, gateway)
        return view.model_dump(mode="json")


class EarlyWarnings:
    """Instances whose chance to meet their deadline fell below the template's ``at_risk_below`` (the
    forecast watch): for the template's owner role (or an admin), until acknowledged, the instance
    finishes or the deadline passes."""

    name = "at_risk"

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            rows = await forecast_data.open_warnings(conn)
        items = []
        for row in rows:
            if not owes(viewer, [row["owner_role"]]):
                continue
            chance = round(100 * row["on_time_probability"])
            items.append(
                InboxItem(
                    id=f"at_risk:{row['instance_id']}",
                    kind=self.name,
                    title=f"At risk in {row['current_state_name']} ({row['template_code']}): {chance}% on time",
                    entity_id=row["root_entity_id"],
                    entity_name=row["entity_name"],
                    assignee=[row["owner_role"]],
                    priority_score=AT_RISK_SCORE,
                    priority_label=priority_label(AT_RISK_SCORE),
                    due_at=row["deadline"],
                    escalated=False,
                    link=f"/api/v1/workflow-instance/{row['instance_id']}/forecast",
                    detail=f"{chance}% chance to finish by the deadline "
                    f"(forecast of {row['warned_ts']:%Y-%m-%d %H:%M} UTC)",
                    actions=["acknowledge"],
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action != "acknowledge":
            raise _refuse(self.name, decision.action, ("acknowledge",))
        instance_id = uuid.UUID(reference)
        await forecast_commands.acknowledge_warning(instance_id, principal, engine)
        return {"instance_id": str(instance_id), "acknowledged_by": principal.name}


class SessionApprovals:
    """Agent sessions whose final output waits for an approver (the approver role, or an admin)."""

    name = "session"
    roles = ["approver"]

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        if not owes(viewer, self.roles):
            return []
        async with engine.connect() as conn:
            rows = await agents_store.awaiting_approval(conn)
        return [
            InboxItem(
                id=f"session:{row['session_id']}",
                kind=self.name,
                title=f"Approve the agents' result: {row['goal'][:120]}",
                entity_id=None,
                entity_name=None,
                assignee=self.roles,
                priority_score=SESSION_APPROVAL_SCORE,
                priority_label=priority_label(SESSION_APPROVAL_SCORE),
                due_at=None,
                escalated=False,
                link=f"/api/v1/orchestrator/session/{row['session_id']}",
                actions=["approve", "reject"],
            )
            for row in rows
        ]

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action not in ("approve", "reject"):
            raise _refuse(self.name, decision.action, ("approve", "reject"))
        body = SessionDecisionCreate(decision=decision.action, comment=getattr(decision, "comment", None))
        session = await session_commands.decide(reference, body, principal, engine, gateway)
        return session.model_dump(mode="json")


class WorkItems:
    """Open work items: their assignee (a name or a role), their escalation user, or an admin."""

    name = "work"

    @staticmethod
    def _actions(item: WorkItemPublic) -> list[Action]:
        progress: list[Action] = ["complete"] if item.status == "underway" else ["start", "complete"]
        return [*progress, "snooze", "skip", "escalate"]

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            open_items = await work_store.queue(
                conn, assignees=None if viewer.role == "admin" else [viewer.name, viewer.role], demo=False, limit=500
            )
            escalated = (
                [] if viewer.role == "admin" else await work_store.escalated_to(conn, [viewer.name, viewer.role])
            )
        seen: set[uuid.UUID] = set()
        items = []
        for item in [*open_items, *escalated]:
            if item.id in seen:
                continue
            seen.add(item.id)
            items.append(
                InboxItem(
                    id=f"work:{item.id}",
                    kind=self.name,
                    title=item.definition_name,
                    entity_id=item.entity_id,
                    entity_name=item.entity_name,
                    assignee=[item.assignee, *([item.escalation_user_id] if item.escalation_user_id else [])],
                    priority_score=item.priority_score,
                    priority_label=item.priority_label,
                    due_at=item.snooze_until if item.status == "snoozed" else item.due_at,
                    escalated=item.escalated_at is not None,
                    link=f"/api/v1/orchestrator/executions/{item.id}",
                    actions=self._actions(item),
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action in ("approve", "reject"):
            raise _refuse(self.name, decision.action, ("start", "complete", "snooze", "skip", "escalate"))
        actor = principal.name
        if decision.action in ("start", "complete"):
            change = ItemChange(
                action="status",
                actor=actor,
                status="underway" if decision.action == "start" else "completed",
                execution_data=getattr(decision, "execution_data", None),
            )
        elif decision.action == "snooze":
            change = ItemChange(action="snooze", actor=actor, days=getattr(decision, "days", None))
        elif decision.action == "skip":
            change = ItemChange(action="skip", actor=actor, reason=getattr(decision, "reason", None))
        else:
            change = ItemChange(
                action="escalate", actor=actor, escalation_user_id=getattr(decision, "escalation_user_id", None)
            )
        item = await work_commands.change(uuid.UUID(reference), change, principal, engine, gateway)
        return item.model_dump(mode="json")


class StepTasks:
    """Human tasks of step workflows (human_task steps, and failed steps escalated to a person): for the
    assignee, and for the escalation target once the task has escalated (or an admin)."""

    name = "task"

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            rows = await steps_store.open_tasks(conn)
        items = []
        for task in rows:
            deciders = [task.assignee] + ([task.escalate_to] if task.escalated and task.escalate_to else [])
            if not owes(viewer, deciders):
                continue
            score = ESCALATED_APPROVAL_SCORE if task.escalated or task.kind == "escalation" else APPROVAL_SCORE
            items.append(
                InboxItem(
                    id=f"task:{task.id}",
                    kind=self.name,
                    title=task.title,
                    entity_id=None,
                    entity_name=None,
                    assignee=deciders,
                    priority_score=score,
                    priority_label=priority_label(score),
                    due_at=task.remind_ts,
                    escalated=task.escalated,
                    link=f"/api/v1/workflow-executions/{task.execution_id}",
                    actions=[a for a in task.actions if a in ("approve", "reject", "retry", "skip", "abort")],
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        async with engine.connect() as conn:
            task = await steps_store.get_task(conn, uuid.UUID(reference))
        if task is None:
            raise ApiError(404, "not_found", f"no task {reference}")
        if decision.action not in task.actions:
            raise _refuse(self.name, decision.action, tuple(task.actions))
        if task.status != "open":
            raise ApiError(409, "task_not_open", f"the task is {task.status}")
        request = TaskDecisionRequest(
            path=task.path,
            action=decision.action,
            comment=getattr(decision, "comment", None) or getattr(decision, "reason", None),
            fields=getattr(decision, "fields", None) or {},
            actor=principal.name,
            actor_role=principal.role,
        )
        # Who may decide, and what the form requires, is the workflow's rule (403 / 422 there).
        try:
            outcome = await gateway.update(task.temporal_workflow_id, StepWorkflowRun.decide_task, request)
        except WorkflowNotFound as exc:
            raise ApiError(409, "task_not_open", "the execution has ended; the task is closed") from exc
        return outcome.model_dump(mode="json")


class PolicyApprovals:
    """Approvals an approval policy asked for (an agent's or a step's tool call, a transition, a rule's
    action): for the approvers it names (people or roles, directory roles included), its escalation
    targets once late, and admins; never shown to the one who asked."""

    name = "policy"

    async def pending(self, engine: AsyncEngine, viewer: Principal) -> list[InboxItem]:
        async with engine.connect() as conn:
            rows = await policy_store.pending_approvals(conn)
            roles = set(await directory.directory_roles(conn, viewer.name)) if rows else set()
        items = []
        for row in rows:
            people, wanted = deciders(
                row.approvers.get("people", []), row.approvers.get("roles", []), row.escalate_to, row.escalated
            )
            mine = viewer.name in people or bool({viewer.role, *roles} & wanted)
            if row.requester == viewer.name or not (viewer.role == "admin" or mine):
                continue
            score = ESCALATED_APPROVAL_SCORE if row.escalated else APPROVAL_SCORE
            items.append(
                InboxItem(
                    id=f"policy:{row.id}",
                    kind=self.name,
                    title=f"{row.title} ({row.policy_name}: {len(row.votes)}/{row.required})",
                    entity_id=None,
                    entity_name=None,
                    assignee=sorted(people | wanted),
                    priority_score=score,
                    priority_label=priority_label(score),
                    due_at=row.deadline_ts,
                    escalated=row.escalated,
                    link=f"/api/v1/approvals/{row.id}",
                    actions=["approve", "reject"],
                    detail=f"{row.reason} · arguments: {_brief(row.arguments)}",
                )
            )
        return items

    async def decide(
        self, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
    ) -> dict[str, Any]:
        if decision.action not in ("approve", "reject"):
            raise _refuse(self.name, decision.action, ("approve", "reject"))
        body = VoteCreate(decision=decision.action, comment=getattr(decision, "comment", None))
        approval = await policy_commands.vote(uuid.UUID(reference), body, principal, engine, gateway)
        return approval.model_dump(mode="json")


async def gather(engine: AsyncEngine, viewer: Principal, kind: str | None = None) -> list[InboxItem]:
    """Every pending item of every kind (or of one) the viewer owes, most urgent first, then soonest due:
    what the API's inbox and the console both show."""
    # The kinds read concurrently, each on its own pooled connection: the answer takes as long as the
    # slowest kind, not the sum of them.
    found = await asyncio.gather(
        *(source.pending(engine, viewer) for name, source in KINDS.items() if kind is None or kind == name)
    )
    items = [item for part in found for item in part]
    return sorted(items, key=lambda i: (-i.priority_score, i.due_at.isoformat() if i.due_at else "9999", i.id))


KINDS: dict[str, InboxKind] = {
    kind.name: kind
    for kind in (
        ApprovalGates(),
        PolicyApprovals(),
        DeadlineAlerts(),
        EarlyWarnings(),
        SessionApprovals(),
        WorkItems(),
        StepTasks(),
    )
}


async def decide(
    kind: str, reference: str, decision: Decision, principal: Principal, engine: AsyncEngine, gateway: Gateway
) -> Any:
    """Decide an item through its kind (the API's inbox and the console's both come here), and count
    the decision once it is applied."""
    result = await KINDS[kind].decide(reference, decision, principal, engine, gateway)
    telemetry.count(telemetry.process_meter(), telemetry.INBOX_DECIDED, {"kind": kind, "action": decision.action})
    return result
