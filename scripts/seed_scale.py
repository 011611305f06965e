"""`make seed-scale`: a database at the seed's scale, for `make bench-scale` and for trying the analytics.

100,000 process instances across the packs' templates (each a random walk through its DAG, with
times drawn around each state's avg_duration_days over the last 180 days; about 12% still active, 3%
cancelled) and their events (a state transition and an entity change per step, approvals, finishes:
about 1,000,000), one root entity each, a rule execution per instance's creation event (completed,
failed with a dead letter, or skipped) with its action log, 20,000 agent sessions of 5 calls, 20,000
work items and 20,000 step-workflow executions. Rows go in with COPY, the templates' success figures
are folded in as the finish transactions would, then ANALYZE.

It uses TRELLIS_DATABASE_URL when set, else an embedded Postgres in .trellis/scale/postgres (kept, so
bench-scale reuses it). A database already seeded (by this script) is left as it is. Random with a
fixed seed: the same rows every time, relative to the day it runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from core.agents.registry import seed_agents
from core.platform.database import libpq_url, make_engine
from core.platform.embedded import start_postgres
from core.platform.migrate import upgrade_database
from core.platform.paths import PROJECT_ROOT
from core.platform.settings import ModelPrice
from core.process import templates
from core.process.contracts import WorkflowGraph
from core.process.store import EVENT_COLUMNS, VISIT_COLUMNS, event_row
from core.process.templates import load_packs
from core.steps.packs import seed_workflows
from core.work.store import seed_definitions

FOLDER = PROJECT_ROOT / ".trellis" / "scale"
MARKER = "scale-"  # workflow ids of seeded instances


def _event(instance_id: str, seq: int, event_type: str, **fields: Any) -> tuple[Any, ...]:
    """An instance event as COPY takes it, built by the store's own row builder (the ids derived the
    same way, so the rows are what real runs write)."""
    row = event_row(instance_id, seq, event_type, **fields)
    row["payload"] = json.dumps(row["payload"])
    return tuple(row[c] for c in EVENT_COLUMNS)


MODELS = {  # the price table the seeded calls were costed with (a model left out: unpriced)
    "gpt-4o-mini": ModelPrice(input_per_1k=0.00015, output_per_1k=0.0006),
    "gpt-4o": ModelPrice(input_per_1k=0.0025, output_per_1k=0.01),
}
AGENT_MODELS = ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "local-llama"]
AGENTS = ["planner", "estimator", "resource", "risk", "validator", "reporter"]


def database_url(folder: Path = FOLDER) -> str:
    configured = os.environ.get("TRELLIS_DATABASE_URL")
    if configured:
        return configured
    _, url = start_postgres(folder / "postgres")  # stopped when this process exits; the data stays
    return url


async def prepare(url: str) -> None:
    """The packs, agents, work definitions and step workflows, as the API's start stores them."""
    engine = make_engine(url)
    try:
        await load_packs(engine)
        await seed_agents(engine)
        async with engine.begin() as conn:
            await seed_definitions(conn)
            await seed_workflows(conn)
    finally:
        await engine.dispose()


class Seeder:
    def __init__(self, conn: psycopg.Connection[Any], instances: int, rng: random.Random) -> None:
        self.conn = conn
        self.instances = instances
        self.rng = rng
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.counts: dict[str, int] = {}
        self.entities: list[uuid.UUID] = []

    def copy(self, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
        started, n = time.perf_counter(), 0
        with self.conn.cursor() as cur, cur.copy(f"COPY app.{table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        self.counts[table] = self.counts.get(table, 0) + n
        print(f"  {table}: {n:,} rows in {time.perf_counter() - started:.1f} s", flush=True)

    # Process instances, their root entities and events ------------------------------------------------

    def templates(self) -> list[tuple[Any, ...]]:
        rows = self.conn.execute(
            "SELECT DISTINCT ON (code) id, code, version, workflow_graph FROM app.d_industry_workflow_graph_head "
            "ORDER BY code, version DESC"
        ).fetchall()
        return [(r[0], r[1], r[2], WorkflowGraph.model_validate(r[3])) for r in rows]

    def walk(self, graph: WorkflowGraph, started: datetime) -> tuple[list[tuple[int, datetime]], str, datetime | None]:
        """A path from the start state with entry times; the status and finish time."""
        states = {s.id: s for s in graph.states}
        current = next(s for s in graph.states if not s.parent_ids)
        path, ts = [(current.id, started)], started
        stop_early = self.rng.random() < 0.12
        while not current.terminal_flag:
            if self.rng.random() < 0.03:
                return path, "cancelled", ts + timedelta(hours=self.rng.uniform(1, 48))
            if stop_early and len(path) >= 2 and self.rng.random() < 0.4:
                return path, "active", None
            expected = current.avg_duration_days or 1.0
            ts = ts + timedelta(days=expected * self.rng.lognormvariate(0, 0.6))
            if ts >= self.now:
                return path, "active", None
            current = states[self.rng.choice(current.child_ids)]
            path.append((current.id, ts))
        return path, "completed", ts

    def seed_instances(self) -> None:
        heads = self.templates()
        graph_rows: list[tuple[Any, ...]] = []
        entity_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        visit_rows: list[tuple[Any, ...]] = []  # f_state_visit: each visit a later state entry ended
        for n in range(self.instances):
            head_id, code, version, graph = heads[n % len(heads)]
            states = {s.id: s for s in graph.states}
            instance, entity = uuid.uuid4(), uuid.uuid4()
            started = self.now - timedelta(days=self.rng.uniform(0, 180))
            path, status, finished = self.walk(graph, started)
            last_state = states[path[-1][0]]
            success = bool(last_state.success) if status == "completed" else (False if status == "cancelled" else None)
            history = []
            previous: int | None = None
            iid = str(instance)
            open_alert = None  # the unacknowledged alert of the state visited last, if any
            for seq, (state_id, ts) in enumerate(path, start=1):
                state = states[state_id]
                open_alert = None
                if seq > 1:  # this entry ended the visit of the state before, as the state entry writes it
                    before, entered = path[seq - 2]
                    visit_rows.append((instance, seq, code, before, entered, ts, (ts - entered).total_seconds()))
                history.append({"from": previous, "to": state_id, "ts": ts.isoformat(), "actor": "scale"})
                moved = {"ts": ts, "from_state_id": previous, "to_state_id": state_id, "trigger_entity_id": entity}
                event_rows.append(_event(iid, seq, "state_transition", actor="scale", **moved))
                payload = {"entity_type": state.entity_name, "status": state.entity_status}
                action = "entity_created" if seq == 1 else "entity_updated"
                event_rows.append(
                    _event(iid, seq, action, actor="scale", created_entity_id=entity, payload=payload, **moved)
                )
                if state.approval is not None:
                    roles = {"roles": list(state.approval.roles)}
                    event_rows.append(_event(iid, seq, "approval_requested", actor="scale", payload=roles, **moved))
                previous = state_id
                # A visit longer than the state's expected time raised a deadline alert (60% acknowledged).
                left = path[seq][1] if seq < len(path) else (finished or self.now)
                expected = timedelta(days=state.avg_duration_days) if state.avg_duration_days else None
                if expected is not None and not state.terminal_flag and left - ts > expected:
                    alert = {"from_state_id": state_id, "to_state_id": None, "trigger_entity_id": entity}
                    event_rows.append(_event(iid, seq, "deadline_exceeded", ts=ts + expected, actor="system", **alert))
                    if self.rng.random() < 0.6:
                        acknowledged = ts + expected + timedelta(hours=1)
                        event_rows.append(
                            _event(iid, seq, "deadline_acknowledged", ts=acknowledged, actor="ops", **alert)
                        )
                    else:
                        open_alert = ts + expected
            last_seq = len(path)
            if status == "completed":
                event_rows.append(
                    _event(
                        iid,
                        last_seq,
                        "instance_completed",
                        ts=finished or self.now,
                        from_state_id=None,
                        to_state_id=previous,
                        trigger_entity_id=entity,
                        actor="scale",
                        payload={"success": success},
                    )
                )
            elif status == "cancelled":
                last_seq += 1
                event_rows.append(
                    _event(
                        iid,
                        last_seq,
                        "instance_cancelled",
                        ts=finished or self.now,
                        from_state_id=previous,
                        to_state_id=None,
                        actor="scale",
                    )
                )
            entity_type = states[path[0][0]].entity_name or "job"
            entity_rows.append((entity, entity_type, f"Scale customer {n}", last_state.entity_status, started, started))
            self.entities.append(entity)
            graph_rows.append(
                (
                    instance,
                    head_id,
                    last_state.id,
                    last_state.name,
                    json.dumps(history),
                    "[]",
                    status,
                    started,
                    finished,
                    f"{MARKER}{instance}",
                    code,
                    version,
                    entity,
                    success,
                    last_seq,
                    finished or path[-1][1],
                    open_alert if status == "active" else None,
                )
            )
        self.copy(
            "d_entity",
            ["id", "entity_type", "name", "status", "created_ts", "updated_ts"],
            iter(entity_rows),
        )
        self.copy(
            "d_industry_workflow_graph_data",
            [
                "id",
                "workflow_head_id",
                "current_state_id",
                "current_state_name",
                "state_history",
                "created_entities",
                "workflow_status",
                "started_ts",
                "completed_ts",
                "workflow_id",
                "template_code",
                "template_version",
                "root_entity_id",
                "success_flag",
                "last_seq",
                "updated_ts",
                "deadline_alert_ts",
            ],
            iter(graph_rows),
        )
        self.copy("f_industry_workflow_events", list(EVENT_COLUMNS), iter(event_rows))
        self.copy(
            "f_state_visit",
            list(VISIT_COLUMNS),
            iter(visit_rows),
        )
        self.conn.execute(templates.RECOUNT_FINISHES)  # the finishes folded in, as count_finish would

    # Automation ----------------------------------------------------------------------------------------

    def seed_automation(self) -> None:
        types = [r[0] for r in self.conn.execute("SELECT DISTINCT entity_type FROM app.d_entity").fetchall()]
        rules: dict[str, list[uuid.UUID]] = {}
        rule_rows = []
        for entity_type in types:
            for k in range(4):
                rule = uuid.uuid4()
                rules.setdefault(entity_type, []).append(rule)
                actions = json.dumps([{"type": "call_webhook", "url": "https://hooks.example.com/scale"}])
                rule_rows.append(
                    (
                        rule,
                        f"scale rule {k} on {entity_type}",
                        entity_type,
                        "create",
                        entity_type,
                        actions,
                        f"whsec_{uuid.uuid4().hex}",
                    )
                )
        self.copy(
            "d_workflow_automation",
            [
                "id",
                "workflow_name",
                "trigger_entity_type",
                "trigger_action_type",
                "action_entity_type",
                "actions",
                "webhook_secret",
            ],
            iter(rule_rows),
        )
        entities = self.conn.execute(
            "SELECT id, entity_type, created_ts FROM app.d_entity WHERE name LIKE 'Scale customer %'"
        ).fetchall()
        events: list[tuple[Any, ...]] = []
        executions: list[tuple[Any, ...]] = []
        logs: list[tuple[Any, ...]] = []
        letters: list[tuple[Any, ...]] = []
        for entity, entity_type, created in entities:
            event = uuid.uuid4()
            events.append((event, entity, entity_type, "create", created, created))
            rule = self.rng.choice(rules[entity_type])
            started = created + timedelta(milliseconds=self.rng.uniform(20, 400))
            finished = started + timedelta(milliseconds=self.rng.lognormvariate(4.5, 0.8))
            roll = self.rng.random()
            if roll < 0.85:
                executions.append((rule, event, f"chain-{rule}-{event}", "completed", None, started, finished))
                logs.append((rule, event, 0, "call_webhook", "done", '{"status": 200}', finished))
            elif roll < 0.93:
                reason = "action 1 (call_webhook) failed: the webhook answered 500 (dead-lettered)"
                executions.append((rule, event, f"chain-{rule}-{event}", "failed", reason, started, finished))
                redelivered = finished + timedelta(hours=2) if self.rng.random() < 0.3 else None
                letters.append(
                    (
                        uuid.uuid4(),
                        f"msg_{event.hex}",
                        rule,
                        event,
                        0,
                        "https://hooks.example.com/scale",
                        "POST",
                        "{}",
                        500,
                        6,
                        finished,
                        redelivered,
                        200 if redelivered else None,
                    )
                )
            else:
                reason = self.rng.choice(
                    [
                        "skipped: the rule is inactive or has reached max_executions",
                        "stopped: the rule was triggered again by its own effect on the same entity",
                    ]
                )
                executions.append((rule, event, f"entity-event-{event}", "skipped", reason, started, started))
        self.copy(
            "f_entity_event",
            ["id", "entity_id", "entity_type", "event_kind", "created_ts", "dispatched_ts"],
            iter(events),
        )
        self.copy(
            "f_rule_execution",
            ["rule_id", "event_id", "workflow_id", "status", "reason", "started_ts", "finished_ts"],
            iter(executions),
        )
        self.copy(
            "f_action_log",
            ["rule_id", "event_id", "action_index", "action_type", "status", "result", "finished_ts"],
            iter(logs),
        )
        self.copy(
            "f_webhook_dead_letter",
            [
                "id",
                "webhook_id",
                "rule_id",
                "event_id",
                "action_index",
                "url",
                "method",
                "body",
                "last_status",
                "attempts",
                "created_ts",
                "redelivered_ts",
                "redelivery_status",
            ],
            iter(letters),
        )

    # Agents, work items, step executions ----------------------------------------------------------------

    def seed_agents(self, sessions: int) -> None:
        session_rows, log_rows = [], []
        for n in range(sessions):
            session_id = f"scale-session-{n}"
            started = self.now - timedelta(days=self.rng.uniform(0, 90))
            ts, tokens, cost_total = started, 0, 0.0
            for agent in ["orchestrator", *self.rng.sample(AGENTS, 4)]:
                model = self.rng.choice(AGENT_MODELS)
                prompt, completion = self.rng.randint(200, 3000), self.rng.randint(50, 1500)
                latency = int(self.rng.lognormvariate(7, 0.5))
                roll = self.rng.random()
                status = "completed" if roll < 0.94 else ("invalid_output" if roll < 0.97 else "error")
                price = MODELS.get(model)
                cost = price.cost(prompt, completion) if price and status == "completed" else 0.0
                ts = ts + timedelta(milliseconds=latency + 50)
                log_rows.append(
                    (
                        uuid.uuid4(),
                        session_id,
                        agent,
                        "execute",
                        status,
                        ts,
                        f"{session_id}:{agent}",
                        model,
                        prompt,
                        completion,
                        cost,
                        latency,
                        None if status == "completed" else "scripted",
                        ts,
                    )
                )
                tokens, cost_total = tokens + prompt + completion, cost_total + cost
            session_rows.append(
                (uuid.uuid4(), session_id, "Scale session goal", "completed", started, ts, tokens, cost_total)
            )
        self.copy(
            "orchestrator_session",
            ["id", "session_id", "goal", "session_status", "started_ts", "completed_ts", "tokens_used", "cost_usd"],
            iter(session_rows),
        )
        self.copy(
            "orchestrator_agent_log",
            [
                "id",
                "session_id",
                "agent_name",
                "action_type",
                "execution_status",
                "execution_ts",
                "call_key",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "latency_ms",
                "error",
                "finished_ts",
            ],
            iter(log_rows),
        )

    def seed_work(self, items: int) -> None:
        definitions = [r[0] for r in self.conn.execute("SELECT id FROM app.work_definition").fetchall()]
        rows = []
        for n in range(items):
            created = self.now - timedelta(days=self.rng.uniform(0, 60))
            status = self.rng.choices(
                ["not_started", "underway", "completed", "snoozed", "skipped"], [30, 10, 45, 8, 7]
            )[0]
            completed = created + timedelta(hours=self.rng.lognormvariate(3, 1)) if status == "completed" else None
            snoozed = created + timedelta(hours=5) if status == "snoozed" or self.rng.random() < 0.1 else None
            rows.append(
                (
                    uuid.uuid4(),
                    definitions[n % len(definitions)],
                    self.entities[n],
                    "operator-user",
                    status,
                    self.rng.randint(100, 1000),
                    created,
                    created,
                    completed,
                    snoozed,
                    created + timedelta(days=2) if status == "snoozed" else None,
                    created if status == "skipped" else None,
                    "no longer relevant" if status == "skipped" else None,
                )
            )
        self.copy(
            "work_item",
            [
                "id",
                "definition_id",
                "entity_id",
                "assignee",
                "status",
                "priority_score",
                "created_ts",
                "updated_ts",
                "completed_at",
                "snoozed_at",
                "snooze_until",
                "skipped_at",
                "skip_reason",
            ],
            iter(rows),
        )

    def seed_steps(self, executions: int) -> None:
        workflows = self.conn.execute(
            "SELECT DISTINCT ON (name) name, version FROM app.workflows ORDER BY name, version DESC"
        ).fetchall()
        rows = []
        for n in range(executions):
            name, version = workflows[n % len(workflows)]
            created = self.now - timedelta(days=self.rng.uniform(0, 60))
            status = self.rng.choices(["completed", "failed", "running"], [85, 10, 5])[0]
            finished = created + timedelta(seconds=self.rng.uniform(1, 600)) if status != "running" else None
            rows.append((uuid.uuid4(), name, version, f"scale-step-{uuid.uuid4()}", status, created, created, finished))
        self.copy(
            "workflow_executions",
            [
                "id",
                "workflow_name",
                "workflow_version",
                "temporal_workflow_id",
                "status",
                "created_ts",
                "started_ts",
                "finished_ts",
            ],
            iter(rows),
        )


def seeded(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM app.d_industry_workflow_graph_data WHERE workflow_id LIKE %s", (f"{MARKER}%",)
    ).fetchone()
    return int(row[0]) if row else 0


def seed(url: str, instances: int, sessions: int, items: int, executions: int, seed_value: int = 7) -> dict[str, int]:
    upgrade_database(url)
    asyncio.run(prepare(url))
    with psycopg.connect(libpq_url(url), autocommit=False) as conn:
        already = seeded(conn)
        if already:
            print(f"already seeded: {already:,} instances; leaving it as it is")
            return {}
        started = time.perf_counter()
        seeder = Seeder(conn, instances, random.Random(seed_value))
        seeder.seed_instances()
        seeder.seed_automation()
        seeder.seed_agents(sessions)
        seeder.seed_work(min(items, instances))
        seeder.seed_steps(executions)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
        print(
            f"seeded in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{t} {n:,}" for t, n in seeder.counts.items())
        )
        return seeder.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--work-items", type=int, default=20_000)
    parser.add_argument("--step-executions", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=FOLDER, help="where the embedded Postgres keeps its data")
    args = parser.parse_args()
    seed(database_url(args.folder), args.instances, args.sessions, args.work_items, args.step_executions)


if __name__ == "__main__":
    main()
