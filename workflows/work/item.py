"""A work item (seed 001) as a workflow, ``work-item-<id>``: every lifecycle change is an update with
a validator (a change that is not allowed is refused before it enters history), recorded by one
activity as one transaction. A snoozed item resurfaces by itself: its workflow holds the timers (at
three days before ``snooze_until`` the item becomes critical, at ``snooze_until`` it is due) and
rescores the item when each fires, with no API call. The workflow ends when the item is completed or
skipped, and continues as new when its history grows long.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.work.items import WorkActivities
    from core.platform import errors
    from core.work.contracts import FINAL, ItemChange, ItemState, ItemWrite, WorkItemInput, WorkItemPublic, allowed
    from core.work.priority import CRITICAL_WITHIN_DAYS

SLA_ACTOR = "system:sla"
_RECORD = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))


@workflow.defn(name="WorkItem")
class WorkItemWorkflow:
    @workflow.init
    def __init__(self, data: WorkItemInput) -> None:
        self._item_id = data.item_id
        self._status = data.status
        self._snooze_until = data.snooze_until
        self._version = data.version
        # One step at a time: a timer that fires while a person's change is being recorded waits for it,
        # then looks again (the change may have ended the snooze or the item).
        self._lock = asyncio.Lock()
        self._seen = data.version
        self._due_at = data.due_at
        self._escalate_to = data.escalate_to
        self._sla_escalated = data.sla_escalated

    @workflow.run
    async def run(self, data: WorkItemInput) -> str:
        while self._status not in FINAL:
            if workflow.info().is_continue_as_new_suggested() and not self._lock.locked():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carried())
            self._seen = self._version
            timer, sla = self._next_timer()
            if timer is None:
                await workflow.wait_condition(self._changed)
                continue
            try:
                await workflow.wait_condition(self._changed, timeout=timer)
            except TimeoutError:
                async with self._lock:
                    if self._changed() or self._status in FINAL:
                        continue  # a change got in first: work out the timers again
                    if sla:  # past its due time: escalated to the SLA's target, who may decide too
                        await self._write(
                            ItemChange(action="escalate", actor=SLA_ACTOR, escalation_user_id=self._escalate_to)
                        )
                        self._sla_escalated = True
                    else:
                        await self._write(None)  # resurfacing: the score changes by itself
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    def _changed(self) -> bool:
        return self._version != self._seen

    def _next_timer(self) -> tuple[timedelta | None, bool]:
        """Time until the next moment something happens by itself, and whether it is the SLA: a snoozed
        item's score jumps (critical, then due); an item past its due time escalates."""
        now = workflow.now()
        moments: list[tuple[datetime, bool]] = []
        if self._status == "snoozed" and self._snooze_until is not None:
            for moment in (self._snooze_until - timedelta(days=CRITICAL_WITHIN_DAYS), self._snooze_until):
                if moment > now:
                    moments.append((moment, False))
                    break
        if self._due_at is not None and self._escalate_to and not self._sla_escalated:
            moments.append((max(self._due_at, now), True))
        if not moments:
            return None, False
        moment, sla = min(moments)
        return moment - now, sla

    def _carried(self) -> WorkItemInput:
        return WorkItemInput(
            item_id=self._item_id,
            status=self._status,
            snooze_until=self._snooze_until,
            version=self._version,
            due_at=self._due_at,
            escalate_to=self._escalate_to,
            sla_escalated=self._sla_escalated,
        )

    async def _write(self, change: ItemChange | None) -> ItemState:
        """Record one step (the caller holds the lock)."""
        state: ItemState = await workflow.execute_local_activity_method(
            WorkActivities.record,
            ItemWrite(item_id=self._item_id, version=self._version + 1, now=workflow.now(), change=change),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD,
        )
        self._status, self._snooze_until, self._version = state.status, state.snooze_until, state.version
        return state

    @workflow.update
    async def change(self, change: ItemChange) -> WorkItemPublic:
        async with self._lock:
            reason = allowed(self._status, change)
            if reason is not None:  # the state moved on while this update waited
                raise errors.INVALID_TRANSITION.error(reason)
            state = await self._write(change)
        assert state.item is not None
        return state.item

    @change.validator
    def _check(self, change: ItemChange) -> None:
        reason = allowed(self._status, change)
        if reason is not None:
            raise errors.INVALID_TRANSITION.error(reason)
