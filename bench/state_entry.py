"""The state entry alone (issue 27): the CPU the Trellis worker's process spends writing one state entry
(the projection, the entity, the events; ``core/process/store.py: enter_state`` in its transaction, as
the activity runs it), and the statements it sends, without Temporal, the API or other load. The VM's
neighbours move ``make bench``'s figures by 15 % between runs of the same code; this measures the write
path's own cost in one process, so a change to it can be compared before and after.

    python -m bench.state_entry [--instances 300]

It starts its own embedded Postgres in a temporary folder (or uses TRELLIS_DATABASE_URL), loads the
industry packs, and walks instances of one pack along a path of its DAG, one state entry at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.entities.store import DEFAULT_LIMITS
from core.platform.database import make_engine
from core.platform.embedded import start_postgres
from core.platform.migrate import upgrade_database_async
from core.process import store, templates
from core.process.contracts import EnterStateInput, HistoryEntry, StateNode, TemplatePublic, TemplateRef


def _path(template: TemplatePublic) -> list[StateNode]:
    """From the start state along each state's first child to a terminal one."""
    states = {s.id: s for s in template.workflow_graph.states}
    current = next(s for s in states.values() if not s.parent_ids)
    path = [current]
    while current.child_ids and not current.terminal_flag and len(path) < 30:
        current = states[current.child_ids[0]]
        path.append(current)
    return path


def _entry(template: TemplatePublic, instance: str, entity: str, seq: int, state: StateNode, prior: int | None) -> Any:
    now = datetime.now(UTC) + timedelta(milliseconds=seq)
    return EnterStateInput(
        instance_id=instance,
        workflow_id=f"bench-{instance}",
        template=TemplateRef(head_id=str(template.id), code=template.code, version=template.version),
        seq=seq,
        ts=now,
        actor="bench",
        comment=None,
        from_state_id=prior,
        to_state=state,
        entity_id=entity if state.entity_name else None,
        entity_action=("created" if seq == 1 else "updated") if state.entity_name else None,
        entity_name="Bench customer" if seq == 1 else None,
        entity_fields={"step": seq},
        root_entity_id=entity,
        root_entity_type=state.entity_name if seq == 1 else None,
        history_entry=HistoryEntry(**{"from": prior}, to=state.id, ts=now, actor="bench"),
        created_entity=None,
        workflow_status="completed" if state.terminal_flag else "active",
        success=bool(state.success) if state.terminal_flag else None,
        pending_approval=None,
        started_ts=now,
    )


async def measure(engine: AsyncEngine, instances: int) -> dict[str, float]:
    packs = await templates.load_packs(engine)
    template = max(packs, key=lambda t: len(_path(t)))
    path = _path(template)
    statements = 0

    class Counted(psycopg.AsyncCursor[Any]):
        """Counts what reaches psycopg, from SQLAlchemy and from core.platform.direct alike."""

        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal statements
            statements += 1
            return await super().execute(*args, **kwargs)

        async def executemany(self, *args: Any, **kwargs: Any) -> None:  # one statement, many rows
            nonlocal statements
            statements += 1
            await super().executemany(*args, **kwargs)

    def counting(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.cursor_factory = Counted

    event.listen(engine.sync_engine, "checkout", counting)
    cpu: list[float] = []
    wall: list[float] = []
    for n in range(instances + 10):  # the first 10 warm the caches and are not counted
        instance, entity = str(uuid.uuid4()), str(uuid.uuid4())
        prior: int | None = None
        for seq, state in enumerate(path, start=1):
            data = _entry(template, instance, entity, seq, state, prior)
            started_cpu, started = time.process_time(), time.perf_counter()
            async with engine.begin() as conn:
                await store.enter_state(conn, data, DEFAULT_LIMITS)
            if n >= 10:
                cpu.append(time.process_time() - started_cpu)
                wall.append(time.perf_counter() - started)
            prior = state.id
        if n == 9:
            statements = 0
    event.remove(engine.sync_engine, "checkout", counting)
    entries = len(cpu)
    return {
        "template": float(len(path)),
        "entries": float(entries),
        "statements_per_entry": statements / entries,
        "cpu_ms_per_entry_mean": statistics.fmean(cpu) * 1000,
        "cpu_ms_per_entry_p50": statistics.median(cpu) * 1000,
        "wall_ms_per_entry_p50": statistics.median(wall) * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=300)
    args = parser.parse_args()
    import os

    url = os.environ.get("TRELLIS_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="trellis-state-entry-") as folder:
        server = None
        if url is None:
            server, url = start_postgres(Path(folder) / "postgres")
        try:
            await upgrade_database_async(url)
            engine = make_engine(url, pool_size=2)
            try:
                found = await measure(engine, args.instances)
            finally:
                await engine.dispose()
        finally:
            if server is not None:
                server.cleanup()
    print(
        f"state entries: {found['entries']:.0f} ({found['template']:.0f} per instance); "
        f"statements per entry (BEGIN and COMMIT not counted): {found['statements_per_entry']:.2f}; "
        f"CPU per entry in this process: mean {found['cpu_ms_per_entry_mean']:.2f} ms, "
        f"p50 {found['cpu_ms_per_entry_p50']:.2f} ms; wall p50 {found['wall_ms_per_entry_p50']:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
