"""Statements sent through psycopg directly (core/platform/direct.py, decision 0025), on the real
Postgres: they store and read the same values as SQLAlchemy, a SQLAlchemy statement inside a pipeline is
refused instead of losing its rows, the pool's check finds a terminated connection without a round trip,
and a retried state entry undoes the entity write its pipeline sent before the projection answered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.process.state_entry import ProcessActivities
from core.entities import store as entities
from core.entities.tables import Entity, EntityEvent
from core.platform import direct
from core.platform.database import make_engine
from core.process import templates
from core.process.contracts import EnterStateInput, HistoryEntry, StateNode, TemplatePublic, TemplateRef
from core.process.tables import GraphData, WorkflowEvent


def _event_row(entity_id: uuid.UUID, kind: str, *, old: Any, new: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "snapshot_event_id": None,
        "entity_id": entity_id,
        "entity_type": "direct_test",
        "event_kind": kind,
        "field_name": "score",
        "old_value": old,
        "new_value": new,
        "old_entity": None,
        "new_entity": {"id": str(entity_id), "fields": {"score": new}, "note": "ünïcode ✓"},
        "causation": [],
        "actor": "tester",
        "created_ts": datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    }


async def test_direct_statements_store_and_read_what_sqlalchemy_does(engine: AsyncEngine) -> None:
    """The same event rows, one inserted by SQLAlchemy and one by direct.send, read back alike (JSON
    null against SQL NULL, numbers, nested objects, times), and direct.fetch returns SQLAlchemy's values."""
    entity_id = uuid.uuid4()
    cases = [(None, 1), (1, True), ("a", {"b": [1, 2.5, None]}), (None, None)]
    read_back = []
    # Written and read back in one transaction that is rolled back: these rows are not real entity
    # changes, and the session worker's outbox dispatcher must never see them.
    async with engine.connect() as conn:
        for old, new in cases:
            by_sqlalchemy = _event_row(entity_id, "field_change", old=old, new=new)
            by_direct = _event_row(entity_id, "field_change", old=old, new=new)
            await conn.execute(insert(EntityEvent), by_sqlalchemy)
            await direct.send(conn, entities._events_statement(), [by_direct])
            columns = [EntityEvent.__table__.c[k] for k in by_direct if k != "id"]
            stored = [
                (await conn.execute(select(*columns).where(EntityEvent.id == row["id"]))).one()
                for row in (by_sqlalchemy, by_direct)
            ]
            nulls = (
                await conn.execute(
                    select(EntityEvent.old_value.is_(None), text("jsonb_typeof(old_value)")).where(
                        EntityEvent.id == by_direct["id"]
                    )
                )
            ).one()
            assert stored[0] == stored[1], (old, new)
            read_back.append(nulls)
        await conn.rollback()
    assert read_back[0] == (False, "null")  # Python None in a JSONB column is JSON null, as SQLAlchemy stores it

    # Reading: the entity store's load (direct) against a SQLAlchemy select of the same row.
    async with engine.begin() as conn:
        created = await entities.create(
            conn,
            entity_id=uuid.uuid4(),
            entity_type="direct_test",
            name="Direct Ltd",
            status="new",
            fields={"score": 7, "tags": ["a"], "nested": {"x": None}},
            ts=datetime.now(UTC),
            actor="tester",
        )
    async with engine.connect() as conn:
        loaded = await entities.load(conn, uuid.UUID(created["id"]))
        row = (await conn.execute(select(*entities.COLUMNS).where(Entity.id == uuid.UUID(created["id"])))).one()
    assert loaded == created == entities.snapshot(row)


async def test_sqlalchemy_statement_inside_a_pipeline_is_refused(engine: AsyncEngine) -> None:
    """In pipeline mode SQLAlchemy would read a result psycopg has not received and return no rows."""
    async with engine.connect() as conn:
        async with direct.pipeline(conn):
            with pytest.raises(RuntimeError, match=r"inside core\.platform\.direct\.pipeline"):
                await conn.execute(text("SELECT 1"))
        await conn.rollback()
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1  # usable again after the block


async def test_pool_replaces_a_terminated_connection_without_a_ping_round_trip(postgres_url: str) -> None:
    """The pool's check reads the socket instead of sending ``;``: a backend terminated while its
    connection sat in the pool is found and replaced, and the next transaction succeeds."""
    engine, other = make_engine(postgres_url, pool_size=1), make_engine(postgres_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            first_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with other.connect() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})).scalar_one()
        for _ in range(50):  # the server closes the socket right after it answers
            async with other.connect() as conn:
                gone = (
                    await conn.execute(
                        text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"), {"pid": first_pid}
                    )
                ).scalar_one()
            if gone:
                break
        async with engine.connect() as conn:
            second_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second_pid != first_pid
    finally:
        await engine.dispose()
        await other.dispose()


def _entry(template: TemplatePublic, state: StateNode, instance: str, entity: str, seq: int, ts: datetime) -> Any:
    return EnterStateInput(
        instance_id=instance,
        workflow_id=f"direct-{instance}",
        template=TemplateRef(head_id=str(template.id), code=template.code, version=template.version),
        seq=seq,
        ts=ts,
        actor="tester",
        comment=None,
        from_state_id=None if seq == 1 else template.workflow_graph.states[0].id,
        to_state=state,
        entity_id=entity,
        entity_action="created" if seq == 1 else "updated",
        entity_name="Retried Ltd" if seq == 1 else None,
        entity_fields={"step": seq},
        root_entity_id=entity,
        root_entity_type=state.entity_name if seq == 1 else None,
        history_entry=HistoryEntry(**{"from": None}, to=state.id, ts=ts, actor="tester"),
        created_entity=None,
        workflow_status="active",
        success=None,
        pending_approval=None,
        started_ts=ts,
    )


async def test_a_retried_state_entry_undoes_the_entity_write_it_sent_early(engine: AsyncEngine) -> None:
    """The state entry sends its entity write before the projection says whether the step was recorded.
    A retry after the commit must not re-apply it over a later edit: the entity keeps the edit, and
    nothing is logged twice."""
    packs = await templates.load_packs(engine)
    template, states = next(
        (t, [s for s in t.workflow_graph.states if s.entity_name and s.entity_status and not s.terminal_flag])
        for t in packs
        if sum(1 for s in t.workflow_graph.states if s.entity_name and s.entity_status and not s.terminal_flag) >= 2
    )
    activities, env = ProcessActivities(engine), ActivityEnvironment()
    instance, entity = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    first = _entry(template, states[0], instance, entity, 1, now)
    second = _entry(template, states[1], instance, entity, 2, now + timedelta(seconds=1))
    await env.run(activities.enter_state, first)
    await env.run(activities.enter_state, second)
    async with engine.begin() as conn:  # someone edits the entity after the step
        await entities.change(
            conn, uuid.UUID(entity), ts=now + timedelta(seconds=2), actor="editor", set_fields={"step": 99}
        )

    await env.run(activities.enter_state, second)  # the retry of an attempt that had committed

    async with engine.connect() as conn:
        found = await entities.load(conn, uuid.UUID(entity))
        logged = (
            await conn.execute(
                select(WorkflowEvent.seq, WorkflowEvent.event_type).where(
                    WorkflowEvent.workflow_data_id == uuid.UUID(instance)
                )
            )
        ).all()
        entity_events = (
            await conn.execute(
                select(EntityEvent.event_kind, EntityEvent.actor).where(EntityEvent.entity_id == uuid.UUID(entity))
            )
        ).all()
        last_seq = (
            await conn.execute(select(GraphData.last_seq).where(GraphData.id == uuid.UUID(instance)))
        ).scalar_one()
    assert found is not None and found["fields"]["step"] == 99 and found["version"] == 3
    assert last_seq == 2
    assert sorted(logged) == sorted(set(logged))  # no event row twice
    assert sum(1 for kind, actor in entity_events if kind == "update" and actor == "tester") == 1


@pytest.mark.parametrize("where", ["comment", "fields"])
async def test_data_postgres_refuses_inside_the_pipeline_fails_the_entry_for_good(
    engine: AsyncEngine, where: str
) -> None:
    """A NUL in JSON is refused by Postgres itself (jsonb), in the projection's statement (a comment
    goes into the event rows) or in the entity write queued behind it: either way the state entry fails
    non-retryable as invalid data, and nothing of it is written."""
    packs = await templates.load_packs(engine)
    template = next(t for t in packs if any(s.entity_name and s.entity_status for s in t.workflow_graph.states))
    state = next(s for s in template.workflow_graph.states if s.entity_name and s.entity_status)
    instance, entity = str(uuid.uuid4()), str(uuid.uuid4())
    entry = _entry(template, state, instance, entity, 1, datetime.now(UTC))
    if where == "comment":
        entry = entry.model_copy(update={"comment": "a\u0000b"})
    else:
        entry = entry.model_copy(update={"entity_fields": {"note": "a\u0000b"}})
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(ProcessActivities(engine).enter_state, entry)
    assert refused.value.type == "InvalidData" and refused.value.non_retryable, refused.value
    async with engine.connect() as conn:
        assert (await conn.execute(select(GraphData.id).where(GraphData.id == uuid.UUID(instance)))).first() is None
        assert await entities.load(conn, uuid.UUID(entity)) is None
