"""Process-instance workflow: one industry DAG instance, from its start state to a terminal state.

Transitions are Temporal updates with validators, so an invalid one is rejected synchronously and
leaves nothing in history. Each state entry is exactly one local activity (one round trip to the
database, no extra task round trip through the server). The template version is pinned in the
workflow input, so editing a template never changes an instance in flight.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.process.state_entry import ProcessActivities
    from core.notifications.contracts import NotificationSpec
    from core.platform import errors
    from core.platform import search_attributes as sa
    from core.platform.pauses import (
        PauseInfo,
        PauseRequest,
        ResumeRequest,
        already_paused_error,
        not_paused_error,
        paused_error,
    )
    from core.platform.public_text import PublicText
    from core.process.contracts import (
        AcknowledgeRequest,
        ApprovalDecision,
        ApprovalRecordInput,
        CancelRequest,
        CreatedEntity,
        DecisionRequest,
        EnterStateInput,
        HistoryEntry,
        InstanceView,
        PendingApproval,
        ProcessOutcome,
        ProcessStartInput,
        StateNode,
        StateRef,
        TemplateRef,
        TransitionRequest,
    )
    from core.process.dag import start_state
    from core.process.ids import PROCESS_WORKFLOW, state_entity_id
    from core.process.migration import (
        MigrateRecordInput,
        MigrateRequest,
        Move,
        Refusal,
        approval_after,
        deadline_after,
        move,
    )

# Error types the API maps to HTTP answers (matched by type, never by message text).

SYSTEM_TIMEOUT_ACTOR = "system:approval-timeout"
SYSTEM_DEADLINE_ACTOR = "system:deadline"
# Patch: a state with avg_duration_days starts a timer when entered (runs recorded before it do not).
DEADLINE_ALERTS = "deadline-alerts"
# The same patch asked before the state-entry local activity instead of after it (decision 0027).
DEADLINE_ALERTS_BEFORE_ENTRY = "deadline-alerts-before-entry"

# A user waits on a transition: bounded retries, then the update fails and nothing changes.
_TRANSITION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5), maximum_attempts=8
)
# The start and system steps have nobody to report to: keep trying (e.g. through a database restart).
_BACKGROUND_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=PROCESS_WORKFLOW)
class ProcessInstanceWorkflow:
    @workflow.init
    def __init__(self, data: ProcessStartInput) -> None:
        self._input = data
        self._template = data.template
        self._states = {s.id: s for s in data.template.graph.states}
        self._workflow_id = workflow.info().workflow_id
        self._current = start_state(data.template.graph)
        self._seq = 0
        self._history: list[HistoryEntry] = []
        self._created: list[CreatedEntity] = []
        self._entity_by_type: dict[str, str] = {}
        self._root_entity_id = data.root_entity_id
        self._root_entity_type = data.root_entity_type
        self._root_name = data.root_entity_name or (data.entity.name if data.entity else None)
        if data.root_entity_id and data.root_entity_type:
            self._entity_by_type[data.root_entity_type] = data.root_entity_id
        self._approval: PendingApproval | None = None
        self._status = "active"
        self._success: bool | None = None
        self._completed_ts: datetime | None = None
        self._ready = False
        self._busy = False
        self._lock = asyncio.Lock()
        self._alert_state: int | None = None  # the state whose deadline alert is open
        self._timers: list[asyncio.Task[None]] = []
        self._paused: PauseInfo | None = None
        # Bumped by each migration: a timer started for the state before it stops (the state may keep its id).
        self._epoch = 0
        self._migrations: set[str] = set()  # migration ids applied, so a repeated update applies nothing

    @workflow.run
    async def run(self, data: ProcessStartInput) -> ProcessOutcome:
        async with self._lock:
            await self._enter(
                self._current,
                actor=data.actor,
                comment=None,
                fields=data.entity.fields if data.entity else {},
                retry=_BACKGROUND_RETRY,
                from_state=None,
            )
        self._ready = True
        await workflow.wait_condition(lambda: self._status != "active" and not self._busy)
        for timer in self._timers:
            await timer
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ProcessOutcome(
            instance_id=data.instance_id, final_state_id=self._current.id, success=bool(self._success)
        )

    # ------------------------------------------------------------------ queries and updates

    @workflow.query
    def view(self) -> InstanceView:
        return InstanceView(
            instance_id=self._input.instance_id,
            workflow_id=self._workflow_id,
            template_code=self._template.code,
            template_version=self._template.version,
            workflow_head_id=self._template.head_id,
            root_entity_id=self._root_entity_id,
            current_state=StateRef.of(self._current),
            allowed_next_states=[] if self._status != "active" else self._allowed(),
            pending_approval=self._approval,
            state_history=list(self._history),
            created_entities=list(self._created),
            workflow_status=self._status,
            success=self._success,
            started_ts=self._input.started_ts,
            completed_ts=self._completed_ts,
            source="workflow",
            paused=self._paused,
            variant=self._input.variant.name if self._input.variant else None,
        )

    @workflow.update
    async def wait_ready(self) -> InstanceView:
        """Answers once the start state is recorded; the API calls it right after starting."""
        await workflow.wait_condition(lambda: self._ready)
        return self.view()

    @workflow.update
    async def transition(self, request: TransitionRequest) -> InstanceView:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_transition(request.to_state_id)  # again: an earlier update may have moved on
            await self._enter(
                self._states[request.to_state_id],
                actor=request.actor,
                comment=request.comment,
                fields=request.fields,
                retry=_TRANSITION_RETRY,
                from_state=self._current,
            )
        return self.view()

    @transition.validator
    def _validate_transition(self, request: TransitionRequest) -> None:
        self._check_transition(request.to_state_id)

    @workflow.update
    async def decide(self, request: DecisionRequest) -> InstanceView:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_decision(request)
            assert self._approval is not None
            gate = self._current.approval
            assert gate is not None
            decision = ApprovalDecision(
                decision=request.decision, actor=request.actor, comment=request.comment, ts=workflow.now()
            )
            await self._record_approval(
                "approval_granted" if request.decision == "approve" else "approval_rejected",
                self._approval.model_copy(
                    update={
                        "status": "approved" if request.decision == "approve" else "rejected",
                        "decisions": [*self._approval.decisions, decision],
                    }
                ),
                actor=request.actor,
                comment=request.comment,
                retry=_TRANSITION_RETRY,
            )
            if request.decision == "reject" and gate.reject_to_state_id is not None:
                await self._enter(
                    self._states[gate.reject_to_state_id],
                    actor=request.actor,
                    comment=request.comment or "approval rejected",
                    fields={},
                    retry=_TRANSITION_RETRY,
                    from_state=self._current,
                )
        return self.view()

    @decide.validator
    def _validate_decide(self, request: DecisionRequest) -> None:
        self._check_decision(request)

    # ------------------------------------------------------------------ rules

    def _allowed(self) -> list[StateRef]:
        return [StateRef.of(self._states[c]) for c in self._current.child_ids]

    def _check_transition(self, to_state_id: int) -> None:
        if self._status != "active":
            raise errors.INSTANCE_FINISHED.error(
                f"instance is {self._status} (state {self._current.id} '{self._current.name}'); "
                "it takes no more transitions",
                {"current_state_id": self._current.id},
            )
        if self._busy:
            raise errors.TRANSITION_IN_PROGRESS.error(
                "another transition of this instance is in progress; retry when it has finished",
            )
        if self._paused is not None:
            raise paused_error("this instance", self._paused)
        if to_state_id not in self._current.child_ids:
            allowed = self._allowed()
            names = ", ".join(f"{s.id} ({s.name})" for s in allowed)
            raise errors.INVALID_TRANSITION.error(
                f"cannot move from state {self._current.id} ('{self._current.name}') to state {to_state_id}; "
                f"allowed next states: {names}",
                {
                    "current_state_id": self._current.id,
                    "allowed_next_states": [s.model_dump() for s in allowed],
                },
            )
        if self._approval is not None and self._approval.status != "approved":
            raise errors.APPROVAL_PENDING.error(
                f"state {self._current.id} ('{self._current.name}') needs an approval before it can be left; "
                f"approval is {self._approval.status} (roles that may approve: {', '.join(self._approval.roles)})",
                {"pending_approval": self._approval.model_dump(mode="json")},
            )

    def _check_decision(self, request: DecisionRequest) -> None:
        if self._status != "active":
            raise errors.INSTANCE_FINISHED.error(
                f"instance is {self._status}; there is nothing to decide",
            )
        if self._busy:
            raise errors.TRANSITION_IN_PROGRESS.error(
                "a transition of this instance is in progress; retry when it has finished",
            )
        if self._paused is not None:
            raise paused_error("this instance", self._paused)
        if self._approval is None or self._approval.status == "approved":
            raise errors.NO_APPROVAL_PENDING.error(
                f"no approval is pending in state {self._current.id} ('{self._current.name}')",
            )
        deciders = self._approval.deciders()
        if request.actor_role != "admin" and request.actor_role not in deciders and request.actor not in deciders:
            raise errors.NOT_PERMITTED.error(
                f"role '{request.actor_role}' may not decide this approval; allowed roles: "
                f"{', '.join(self._approval.roles)}"
                + (f"; escalated to: {', '.join(self._approval.escalated_to)}" if self._approval.escalated else ""),
            )

    # ------------------------------------------------------------------ state entry

    async def _enter(
        self,
        state: StateNode,
        *,
        actor: str,
        comment: str | None,
        fields: dict[str, object],
        retry: RetryPolicy,
        from_state: StateNode | None,
    ) -> None:
        """Record entering ``state``; in-memory state changes only after the write has succeeded."""
        self._busy = True
        try:
            seq = self._seq + 1
            now = workflow.now()
            entity_id, action, entity_name = self._plan_entity(state, seq)
            entry = HistoryEntry(
                **{"from": from_state.id if from_state else None},
                to=state.id,
                ts=now,
                actor=actor,
                comment=comment,
            )
            created_entity = (
                CreatedEntity(
                    state_id=state.id,
                    entity=state.entity_name,
                    id=entity_id,
                    action=action,
                    status=state.entity_status,
                )
                if entity_id is not None and action is not None and state.entity_name
                else None
            )
            status = "completed" if state.terminal_flag else "active"
            success = bool(state.success) if state.terminal_flag else None
            approval = None
            if state.approval is not None:
                timeout_at = (
                    now + timedelta(seconds=state.approval.timeout_seconds) if state.approval.timeout_seconds else None
                )
                approval = PendingApproval(
                    state_id=state.id,
                    status="pending",
                    roles=state.approval.roles,
                    requested_ts=now,
                    timeout_at=timeout_at,
                )
            root_id = self._root_entity_id or (entity_id if from_state is None else None)
            root_type = self._root_entity_type or (state.entity_name if from_state is None else None)
            # Asked before the local activity: a query answered while its result waited would move a
            # marker recorded after it into the next task, where a replaying patched() cannot see it
            # (decision 0027). Runs recorded before keep DEADLINE_ALERTS after it, asked below.
            alerts_patched = bool(
                state.avg_duration_days and not state.terminal_flag and workflow.patched(DEADLINE_ALERTS_BEFORE_ENTRY)
            )
            await workflow.execute_local_activity_method(
                ProcessActivities.enter_state,
                EnterStateInput(
                    instance_id=self._input.instance_id,
                    workflow_id=self._workflow_id,
                    template=TemplateRef(
                        head_id=self._template.head_id, code=self._template.code, version=self._template.version
                    ),
                    seq=seq,
                    ts=now,
                    actor=actor,
                    comment=comment,
                    from_state_id=from_state.id if from_state else None,
                    to_state=state,
                    entity_id=entity_id,
                    entity_action=action,
                    entity_name=entity_name,
                    entity_fields=dict(fields),
                    root_entity_id=root_id,
                    root_entity_type=root_type,
                    history_entry=entry,
                    created_entity=created_entity,
                    workflow_status=status,
                    success=success,
                    pending_approval=approval,
                    started_ts=self._input.started_ts,
                    variant=self._input.variant,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=retry,
                summary=PublicText(f"enter {state.id} {state.name}"),
            )
        finally:
            self._busy = False
        # The write is durable: commit the new state in memory.
        self._seq = seq
        self._history.append(entry)
        if created_entity is not None:
            self._created.append(created_entity)
        self._root_entity_id, self._root_entity_type = root_id, root_type
        if entity_id is not None and state.entity_name:
            self._entity_by_type[state.entity_name] = entity_id
        self._current = state
        self._status, self._success = status, success
        self._completed_ts = now if state.terminal_flag else None
        self._approval = approval
        if self._input.search_attributes:
            workflow.upsert_search_attributes(
                [sa.CURRENT_STATE.value_set(state.name), sa.INSTANCE_STATUS.value_set(status)]
                + ([sa.ROOT_ENTITY_ID.value_set(root_id)] if root_id else [])
            )
        workflow.set_current_details(self._details())
        if approval is not None and state.approval is not None and state.approval.timeout_seconds:
            self._timers.append(asyncio.create_task(self._approval_timer(state)))
        self._alert_state = None
        alerted = bool(state.avg_duration_days) and not state.terminal_flag
        if alerted and (alerts_patched or workflow.patched(DEADLINE_ALERTS)):
            self._timers.append(asyncio.create_task(self._deadline_timer(state)))

    def _plan_entity(self, state: StateNode, seq: int) -> tuple[str | None, str | None, str | None]:
        """Reuse the instance's entity of the same type (a quote goes Draft → Sent), else create one."""
        if not state.entity_name:
            return None, None, None
        existing = self._entity_by_type.get(state.entity_name)
        if existing is not None:
            return existing, "updated", None
        name = f"{state.entity_name} for {self._root_name}" if self._root_name else state.entity_name
        if seq == 1 and self._input.entity is not None:
            name = self._input.entity.name
        return str(state_entity_id(self._input.instance_id, seq)), "created", name

    # ------------------------------------------------------------------ approvals

    async def _approval_timer(self, state: StateNode, wait: timedelta | None = None) -> None:
        gate = state.approval
        assert gate is not None and gate.timeout_seconds is not None
        epoch = self._epoch

        def settled() -> bool:
            # Templates are acyclic, so once the instance has left the state it never returns; a
            # migration (epoch) starts the target state's own timer.
            return (
                self._current.id != state.id
                or self._approval is None
                or self._approval.status == "approved"
                or self._epoch != epoch
            )

        try:
            await workflow.wait_condition(
                settled, timeout=wait if wait is not None else timedelta(seconds=gate.timeout_seconds)
            )
            return
        except TimeoutError:
            pass
        await self._unpaused()  # fell due while paused: acts on resume
        async with self._lock:
            if settled():
                return
            assert self._approval is not None  # settled() says so
            if gate.on_timeout == "default_path" and gate.default_to_state_id is not None:
                await self._record_approval(
                    "approval_timed_out",
                    self._approval,
                    actor=SYSTEM_TIMEOUT_ACTOR,
                    comment="approval timed out",
                    retry=_BACKGROUND_RETRY,
                )
                await self._enter(
                    self._states[gate.default_to_state_id],
                    actor=SYSTEM_TIMEOUT_ACTOR,
                    comment="approval timed out: default path taken",
                    fields={},
                    retry=_BACKGROUND_RETRY,
                    from_state=self._current,
                )
            else:
                subject = f"Approval overdue: {self._template.code} instance {self._input.instance_id}"
                body = (
                    f"State '{state.name}' of {self._template.name} has waited {gate.timeout_seconds}s for an "
                    f"approval by {', '.join(gate.roles)}."
                )
                await self._record_approval(
                    "approval_escalated",
                    self._approval.model_copy(update={"escalated": True, "escalated_to": list(gate.escalate_to)}),
                    actor=SYSTEM_TIMEOUT_ACTOR,
                    comment="approval timed out: escalated",
                    retry=_BACKGROUND_RETRY,
                    notifications=[
                        NotificationSpec(recipient=r, template="approval_escalated", subject=subject, body=body)
                        for r in gate.escalate_to
                    ],
                )

    # ------------------------------------------------------------------ deadline alerts

    async def _deadline_timer(self, state: StateNode, wait: timedelta | None = None) -> None:
        """One alert when the instance stays in ``state`` longer than its avg_duration_days: a
        notification and an inbox item for the template's owner role, until acknowledged."""
        assert state.avg_duration_days is not None
        epoch = self._epoch

        def left() -> bool:
            # Templates are acyclic, so once the instance has left the state it never returns; a
            # migration (epoch) starts the target state's own timer.
            return self._current.id != state.id or self._status != "active" or self._epoch != epoch

        try:
            due = wait if wait is not None else timedelta(days=state.avg_duration_days)
            await workflow.wait_condition(left, timeout=due)
            return
        except TimeoutError:
            pass
        await self._unpaused()  # fell due while paused: acts on resume
        async with self._lock:
            if left():
                return
            owner = self._template.graph.owner_role
            subject = f"Overdue: {self._template.code} instance {self._input.instance_id} in '{state.name}'"
            body = (
                f"Instance {self._input.instance_id} of {self._template.name} has been in '{state.name}' longer "
                f"than the expected {state.avg_duration_days:g} days."
            )
            await self._record_approval(
                "deadline_exceeded",
                self._approval,
                actor=SYSTEM_DEADLINE_ACTOR,
                comment=f"in '{state.name}' longer than the expected {state.avg_duration_days:g} days",
                retry=_BACKGROUND_RETRY,
                notifications=[
                    NotificationSpec(recipient=owner, template="deadline_exceeded", subject=subject, body=body)
                ],
            )
            self._alert_state = state.id

    # ------------------------------------------------------------------ pause and resume

    async def _unpaused(self) -> None:
        """Wait while the instance is paused (returns at once when it is not, emitting nothing)."""
        await workflow.wait_condition(lambda: self._paused is None or self._status != "active")

    @workflow.update
    async def pause(self, request: PauseRequest) -> InstanceView:
        """Stop taking transitions and decisions until resumed; timers keep time (module doc of
        core/platform/pauses.py)."""
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_pause()
            info = PauseInfo(actor=request.actor, reason=request.reason, ts=workflow.now())
            await self._record_approval(
                "instance_paused",
                self._approval,
                actor=request.actor,
                comment=request.reason,
                retry=_TRANSITION_RETRY,
                pause=(True, info),
            )
            self._paused = info
            workflow.set_current_details(self._details())
        return self.view()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_pause()

    def _check_pause(self) -> None:
        if self._status != "active":
            raise errors.INSTANCE_FINISHED.error(f"instance is {self._status}; there is nothing to pause")
        if self._paused is not None:
            raise already_paused_error("this instance", self._paused)

    @workflow.update
    async def resume(self, request: ResumeRequest) -> InstanceView:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_resume()
            await self._record_approval(
                "instance_resumed",
                self._approval,
                actor=request.actor,
                comment=request.comment,
                retry=_TRANSITION_RETRY,
                pause=(True, None),
            )
            self._paused = None
            workflow.set_current_details(self._details())
        return self.view()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._check_resume()

    def _check_resume(self) -> None:
        if self._paused is None:
            raise not_paused_error("this instance")

    # ------------------------------------------------------------------ migration

    @workflow.update
    async def migrate(self, request: MigrateRequest) -> InstanceView:
        """Take another version of the template (a migration's batch sends this, once per instance: a
        repeated update of the same migration applies nothing). The validator checks the plan against
        the state the instance stands in now, with the rule the preview used."""
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            if request.migration_id in self._migrations:
                return self.view()
            found = self._check_migrate(request)
            await self._migrate(request, found)
        return self.view()

    @migrate.validator
    def _validate_migrate(self, request: MigrateRequest) -> None:
        if request.migration_id not in self._migrations:
            self._check_migrate(request)

    def _check_migrate(self, request: MigrateRequest) -> Move:
        def refuse(message: str) -> Exception:
            return errors.MIGRATION_REFUSED.error(message, {"current_state_id": self._current.id})

        if self._status != "active":
            raise refuse(f"instance is {self._status}; only active instances migrate")
        if self._busy:
            raise errors.TRANSITION_IN_PROGRESS.error("a transition of this instance is in progress; retry")
        if self._template.code != request.target.code or self._template.version != request.from_version:
            raise refuse(f"instance runs {self._template.code} v{self._template.version}, not v{request.from_version}")
        found = move(self._current, self._approval, request.target.graph, request.mapping, request.rules)
        if isinstance(found, Refusal):
            raise refuse(found.message)
        return found

    async def _migrate(self, request: MigrateRequest, found: Move) -> None:
        now = workflow.now()
        target = found.target
        approval = approval_after(found, self._approval, now)
        entered = self._history[-1].ts if self._history else now
        entity_id = self._entity_by_type.get(target.entity_name) if target.entity_name else None
        set_status = request.rules.entity == "target_status" and entity_id is not None and target.entity_status
        before = self._template
        self._busy = True
        try:
            seq = self._seq + 1
            await workflow.execute_local_activity_method(
                ProcessActivities.migrate,
                MigrateRecordInput(
                    instance_id=self._input.instance_id,
                    seq=seq,
                    ts=now,
                    actor=request.actor,
                    migration_id=request.migration_id,
                    from_head_id=before.head_id,
                    from_version=before.version,
                    to_head_id=request.target.head_id,
                    to_version=request.target.version,
                    from_state_id=self._current.id,
                    to_state=target,
                    pending_approval=approval,
                    entity_id=entity_id if set_status else None,
                    entity_status=target.entity_status if set_status else None,
                    payload={
                        "migration_id": request.migration_id,
                        "from_version": before.version,
                        "to_version": request.target.version,
                        "from_state_id": self._current.id,
                        "to_state_id": target.id,
                        "mapping": [m.model_dump() for m in request.mapping],
                        "rules": request.rules.model_dump(),
                        "approval": found.approval,
                    },
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_TRANSITION_RETRY,
                summary=PublicText(f"migrate to v{request.target.version}: {target.id} {target.name}"),
            )
        finally:
            self._busy = False
        self._seq = seq
        self._migrations.add(request.migration_id)
        self._template = request.target
        self._states = {s.id: s for s in request.target.graph.states}
        self._current = target
        self._approval = approval
        self._alert_state = None
        self._epoch += 1
        if self._input.search_attributes:
            workflow.upsert_search_attributes([sa.CURRENT_STATE.value_set(target.name)])
        workflow.set_current_details(self._details())
        gate = target.approval
        if approval is not None and approval.status != "approved" and gate is not None and gate.timeout_seconds:
            due = approval.timeout_at or now
            self._timers.append(asyncio.create_task(self._approval_timer(target, max(due - now, timedelta(0)))))
        deadline = deadline_after(target, entered, now, request.rules)
        if deadline is not None:
            wait = max(deadline - now, timedelta(0))
            self._timers.append(asyncio.create_task(self._deadline_timer(target, wait)))

    @workflow.update
    async def cancel(self, request: CancelRequest) -> InstanceView:
        """End the instance where it stands: an ``instance_cancelled`` event, no transitions after it."""
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_cancel()
            await self._record_approval(
                "instance_cancelled",
                None,
                actor=request.actor,
                comment=request.comment,
                retry=_TRANSITION_RETRY,
                workflow_status="cancelled",
            )
            self._status, self._success, self._completed_ts = "cancelled", False, workflow.now()
            if self._input.search_attributes:
                workflow.upsert_search_attributes([sa.INSTANCE_STATUS.value_set("cancelled")])
            workflow.set_current_details(self._details())
        return self.view()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._check_cancel()

    def _check_cancel(self) -> None:
        if self._status != "active":
            raise errors.INSTANCE_FINISHED.error(
                f"instance is {self._status} (state {self._current.id} '{self._current.name}'); "
                "there is nothing to cancel",
            )

    @workflow.update
    async def acknowledge(self, request: AcknowledgeRequest) -> InstanceView:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            self._check_acknowledge(request)
            await self._record_approval(
                "deadline_acknowledged",
                self._approval,
                actor=request.actor,
                comment=request.comment,
                retry=_TRANSITION_RETRY,
            )
            self._alert_state = None
        return self.view()

    @acknowledge.validator
    def _validate_acknowledge(self, request: AcknowledgeRequest) -> None:
        self._check_acknowledge(request)

    def _check_acknowledge(self, request: AcknowledgeRequest) -> None:
        if self._alert_state is None or self._alert_state != self._current.id:
            raise errors.NO_ALERT_OPEN.error(
                "no deadline alert is open for this instance's current state",
            )
        owner = self._template.graph.owner_role
        if request.actor_role not in (owner, "admin"):
            raise errors.NOT_PERMITTED.error(
                f"deadline alerts of {self._template.code} are for the role {owner}",
            )

    async def _record_approval(
        self,
        event_type: str,
        approval_after: PendingApproval | None,
        *,
        actor: str,
        comment: str | None,
        retry: RetryPolicy,
        notifications: list[NotificationSpec] | None = None,
        workflow_status: str | None = None,
        pause: tuple[bool, PauseInfo | None] = (False, None),
    ) -> None:
        self._busy = True
        try:
            seq = self._seq + 1
            await workflow.execute_local_activity_method(
                ProcessActivities.record_approval,
                ApprovalRecordInput(
                    instance_id=self._input.instance_id,
                    seq=seq,
                    event_type=event_type,
                    state_id=self._current.id,
                    ts=workflow.now(),
                    actor=actor,
                    comment=comment,
                    pending_approval=approval_after,
                    notifications=notifications or [],
                    workflow_status=workflow_status,
                    pause_change=pause[0],
                    paused=pause[1],
                    payload={"reason": pause[1].reason} if pause[1] else {},
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=retry,
                summary=PublicText(event_type),
            )
        finally:
            self._busy = False
        self._seq = seq
        self._approval = approval_after
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        lines = [
            f"**{self._template.name}** ({self._template.code} v{self._template.version})",
            f"State: {self._current.id} `{self._current.name}` — {self._status}",
        ]
        if self._root_name and self._input.names_in_temporal:
            lines.append(f"Customer/root: {self._root_name}")
        if self._approval is not None:
            lines.append(f"Approval: {self._approval.status} (roles {', '.join(self._approval.roles)})")
        if self._paused is not None:
            lines.append(f"Paused by {self._paused.actor}: {self._paused.reason}")
        return "\n\n".join(lines)
