"""Activities of the process-instance workflow: everything a state entry or an approval step writes,
in one transaction, keyed so that a retry (or a worker killed mid-write) never duplicates a row."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from core.entities import store as entities
from core.entities.contracts import EntityLimits, EntityTooLarge
from core.entities.store import DEFAULT_LIMITS
from core.notifications.store import insert_notifications
from core.platform import errors, telemetry
from core.platform.database import is_data_error
from core.process import templates
from core.process.contracts import ApprovalRecordInput, EnterStateInput, EnterStateResult
from core.process.ids import event_id
from core.process.tables import GraphData, WorkflowEvent

logger = logging.getLogger(__name__)


def _json(models: list[Any]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", by_alias=True) for m in models]


@contextmanager
def refuse_invalid_data() -> Iterator[None]:
    """Data Postgres refuses will be refused on every retry too: fail at once, non-retryable."""
    try:
        yield
    except EntityTooLarge as exc:
        raise errors.INVALID_DATA.error(str(exc)) from exc
    except DBAPIError as exc:
        if not is_data_error(exc):
            raise
        message = f"the database refused the data: {exc.orig}"
        raise errors.INVALID_DATA.error(message) from exc


class ProcessActivities:
    """Built in ``worker.py`` with the engine it writes through and the entity limits."""

    def __init__(self, engine: AsyncEngine, limits: EntityLimits = DEFAULT_LIMITS) -> None:
        self._engine = engine
        self._limits = limits

    @activity.defn(name="process.enter_state")
    async def enter_state(self, data: EnterStateInput) -> EnterStateResult:
        """Create or update the state's entity, link it, project the instance and log the events."""
        with refuse_invalid_data():
            return await self._enter_state(data)

    async def _enter_state(self, data: EnterStateInput) -> EnterStateResult:
        state = data.to_state
        entity = uuid.UUID(data.entity_id) if data.entity_id else None
        root = uuid.UUID(data.root_entity_id) if data.root_entity_id else None
        async with self._engine.begin() as conn:
            if not await self._project(conn, data):
                # An earlier attempt committed this step already: nothing more to write.
                return EnterStateResult(entity_id=data.entity_id)
            if state.terminal_flag:
                await templates.count_finish(
                    conn,
                    uuid.UUID(data.template.head_id),
                    started=data.started_ts,
                    finished=data.ts,
                    success=bool(state.success),
                )
            if entity is not None and state.entity_name and state.entity_status:
                if data.entity_action == "created":
                    under_root = root is not None and data.root_entity_type is not None and root != entity
                    await entities.create(
                        conn,
                        entity_id=entity,
                        entity_type=state.entity_name,
                        name=data.entity_name or state.entity_name,
                        status=state.entity_status,
                        fields=data.entity_fields,
                        ts=data.ts,
                        actor=data.actor,
                        parent=(data.root_entity_type, root) if under_root else None,  # type: ignore[arg-type]
                        limits=self._limits,
                    )
                elif (
                    await entities.change(
                        conn,
                        entity,
                        status=state.entity_status,
                        set_fields=data.entity_fields,
                        ts=data.ts,
                        actor=data.actor,
                        limits=self._limits,
                    )
                    is None
                ):
                    logger.warning("instance %s: entity %s to update is gone", data.instance_id, entity)

            events: list[dict[str, Any]] = [
                self._event(data, "state_transition", created=entity if data.entity_action == "created" else None)
            ]
            if entity is not None and data.entity_action is not None:
                events.append(
                    self._event(
                        data,
                        f"entity_{data.entity_action}",
                        created=entity,
                        payload={"entity_type": state.entity_name, "status": state.entity_status},
                    )
                )
            if state.approval is not None:
                events.append(self._event(data, "approval_requested", payload={"roles": list(state.approval.roles)}))
            if state.terminal_flag:
                events.append(self._event(data, "instance_completed", payload={"success": bool(state.success)}))
            await conn.execute(
                insert(WorkflowEvent).values(events).on_conflict_do_nothing(index_elements=[WorkflowEvent.id])
            )
        # Committed by this attempt (an attempt that found the step recorded returned above).
        meter = activity.metric_meter()
        template = {"template": data.template.code}
        telemetry.count(meter, telemetry.TRANSITIONS, template)
        if state.terminal_flag:
            outcome = "succeeded" if state.success else "failed"
            telemetry.count(meter, telemetry.INSTANCES_FINISHED, template | {"outcome": outcome})
        if state.approval is not None:
            telemetry.count(meter, telemetry.INBOX_OPENED, {"kind": "approval"})
        return EnterStateResult(entity_id=data.entity_id)

    @activity.defn(name="process.record_approval")
    async def record_approval(self, data: ApprovalRecordInput) -> None:
        """Record an approval step (decision, escalation, timeout) and send its notifications."""
        with refuse_invalid_data():
            await self._record_approval(data)

    async def _record_approval(self, data: ApprovalRecordInput) -> None:
        instance = uuid.UUID(data.instance_id)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(GraphData)
                .where(GraphData.id == instance, GraphData.last_seq < data.seq)
                .values(
                    pending_approval=(data.pending_approval.model_dump(mode="json") if data.pending_approval else None),
                    last_seq=data.seq,
                    updated_ts=data.ts,
                    **(
                        {"workflow_status": data.workflow_status, "completed_ts": data.ts, "success_flag": False}
                        if data.workflow_status is not None
                        else {}
                    ),
                )
                .returning(GraphData.workflow_head_id, GraphData.started_ts, GraphData.template_code)
            )
            recorded = result.first()
            if recorded is None:
                return  # an earlier attempt recorded this step
            if data.workflow_status is not None:
                await templates.count_finish(
                    conn, recorded.workflow_head_id, started=recorded.started_ts, finished=data.ts, success=False
                )
            await conn.execute(
                insert(WorkflowEvent)
                .values(
                    id=event_id(data.instance_id, data.seq, data.event_type),
                    workflow_data_id=instance,
                    event_type=data.event_type,
                    from_state_id=data.state_id,
                    to_state_id=None,
                    event_ts=data.ts,
                    seq=data.seq,
                    actor=data.actor,
                    comment=data.comment,
                    payload={},
                )
                .on_conflict_do_nothing(index_elements=[WorkflowEvent.id])
            )
            await insert_notifications(
                conn,
                data.notifications,
                dedupe_prefix=f"process:{data.instance_id}:{data.seq}",
                source=f"process:{data.instance_id}",
                entity_id=None,
                ts=data.ts,
            )
        if data.workflow_status is not None:  # counted once committed
            finished = {"template": recorded.template_code, "outcome": data.workflow_status}
            telemetry.count(activity.metric_meter(), telemetry.INSTANCES_FINISHED, finished)

    @staticmethod
    def _event(
        data: EnterStateInput,
        event_type: str,
        *,
        created: uuid.UUID | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": event_id(data.instance_id, data.seq, event_type),
            "workflow_data_id": uuid.UUID(data.instance_id),
            "event_type": event_type,
            "from_state_id": data.from_state_id,
            "to_state_id": data.to_state.id,
            "trigger_entity_id": uuid.UUID(data.root_entity_id) if data.root_entity_id else None,
            "created_entity_id": created,
            "event_ts": data.ts,
            "seq": data.seq,
            "actor": data.actor,
            "comment": data.comment,
            "payload": payload or {},
        }

    @staticmethod
    async def _project(conn: AsyncConnection, data: EnterStateInput) -> bool:
        """Upsert the instance row unless a later (or this) step is already recorded."""
        state = data.to_state
        values: dict[str, Any] = {
            "id": uuid.UUID(data.instance_id),
            "workflow_head_id": uuid.UUID(data.template.head_id),
            "current_state_id": state.id,
            "current_state_name": state.name,
            "state_history": _json([data.history_entry]),
            "created_entities": _json([data.created_entity] if data.created_entity else []),
            "workflow_status": data.workflow_status,
            "success_flag": data.success,
            "started_ts": data.started_ts,
            "completed_ts": data.ts if state.terminal_flag else None,
            "workflow_id": data.workflow_id,
            "template_code": data.template.code,
            "template_version": data.template.version,
            "root_entity_id": uuid.UUID(data.root_entity_id) if data.root_entity_id else None,
            "pending_approval": data.pending_approval.model_dump(mode="json") if data.pending_approval else None,
            "last_seq": data.seq,
            "updated_ts": data.ts,
        }
        insert_row = insert(GraphData).values(**values)
        excluded = insert_row.excluded
        changing: dict[str, Any] = {k: excluded[k] for k in values if k not in ("id", "started_ts", "workflow_head_id")}
        # The lists grow by this step's entries; the seq guard below makes that happen once per step.
        changing["state_history"] = GraphData.state_history.op("||")(excluded.state_history)
        changing["created_entities"] = GraphData.created_entities.op("||")(excluded.created_entities)
        upsert = insert_row.on_conflict_do_update(
            index_elements=[GraphData.id], set_=changing, where=GraphData.last_seq < excluded.last_seq
        ).returning(GraphData.id)
        return (await conn.execute(upsert)).first() is not None
