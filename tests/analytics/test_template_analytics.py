"""Template analytics against an independent count over the raw rows.

The data set is written by the real state-entry activity (run through Temporal's ActivityEnvironment,
against the real database) with fixed timestamps, and every other write is repeated as a retry would
repeat it: a figure that counted a retried write twice would not match. One more instance runs through
the real worker and API."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.process.contracts import (
    StateNode,
)
from tests.support.analytics import close, percentile, write_instances
from tests.support.api import Api, eventually
from tests.support.process import node, template, unique_code

T0 = datetime(2026, 1, 5, tzinfo=UTC)
DAY = 86_400.0

STATES = [
    node(0, [], [1, 3], name="Intake", avg_duration_days=1),
    node(1, [0], [2, 3], name="Review", avg_duration_days=2),
    node(2, [1], [], name="Done", terminal_flag=True, success=True),
    node(3, [0, 1], [], name="Rejected", terminal_flag=True, success=False),
]

# (start hour, [(state, hours after start), ...], cancel at hour or None); times are offsets from T0.
SCRIPTS: list[tuple[float, list[tuple[int, float]], float | None]] = [
    (0, [(0, 0), (1, 20), (2, 90)], None),  # review 70 h: over its 2 days
    (5, [(0, 0), (1, 30), (2, 60)], None),
    (10, [(0, 0), (1, 10), (2, 40)], None),
    (24, [(0, 0), (3, 12)], None),  # rejected at intake
    (30, [(0, 0), (1, 40), (3, 100)], None),  # rejected at review
    (48, [(0, 0), (1, 5)], 80.0),  # cancelled in review
    (50, [(0, 0), (1, 30)], None),  # active, in review since long ago: stuck
    (60, [(0, 0)], None),  # active at intake: stuck
    (72, [(0, 0), (1, 24), (2, 48)], None),
    (400, [(0, 0), (1, 1), (2, 3)], None),  # outside the [T0, T0 + 10 days) window asked below
]


async def raw_rows(engine: AsyncEngine, code: str) -> tuple[list[Any], list[Any]]:
    async with engine.connect() as conn:
        instances = (
            await conn.execute(
                text("SELECT * FROM app.d_industry_workflow_graph_data WHERE template_code = :c"), {"c": code}
            )
        ).all()
        events = (
            await conn.execute(
                text(
                    "SELECT e.* FROM app.f_industry_workflow_events e JOIN app.d_industry_workflow_graph_data d "
                    "ON d.id = e.workflow_data_id WHERE d.template_code = :c"
                ),
                {"c": code},
            )
        ).all()
    return instances, events


def expected_figures(
    instances: list[Any], events: list[Any], start: datetime | None, end: datetime | None, now: datetime
) -> dict[str, Any]:
    """Everything the endpoint reports, recomputed in Python from the raw rows."""
    chosen = {
        i.id: i for i in instances if (start is None or i.started_ts >= start) and (end is None or i.started_ts < end)
    }
    finished = [i for i in chosen.values() if i.workflow_status != "active"]
    succeeded = [i for i in finished if i.success_flag]
    durations = [(i.completed_ts - i.started_ts).total_seconds() for i in finished]
    transitions: dict[Any, list[Any]] = defaultdict(list)
    for e in events:
        if e.workflow_data_id in chosen and e.event_type == "state_transition":
            transitions[e.workflow_data_id].append(e)
    spent: dict[int, list[float]] = defaultdict(list)
    entries: Counter[int] = Counter()
    stuck: list[tuple[str, int]] = []
    paths: Counter[tuple[int, ...]] = Counter()
    expected_days = {s["id"]: s.get("avg_duration_days") for s in STATES}
    terminal = {s["id"] for s in STATES if s.get("terminal_flag")}
    for instance_id, visits in transitions.items():
        visits.sort(key=lambda e: e.seq)
        instance = chosen[instance_id]
        for index, visit in enumerate(visits):
            entries[visit.to_state_id] += 1
            left = visits[index + 1].event_ts if index + 1 < len(visits) else instance.completed_ts
            if left is not None and visit.to_state_id not in terminal:
                spent[visit.to_state_id].append((left - visit.event_ts).total_seconds())
            days = expected_days[visit.to_state_id]
            if left is None and instance.workflow_status == "active" and days:
                if (now - visit.event_ts).total_seconds() / DAY > days:
                    stuck.append((str(instance_id), visit.to_state_id))
        if instance.workflow_status != "active":
            paths[tuple(v.to_state_id for v in visits)] += 1
    return {
        "started": len(chosen),
        "active": sum(1 for i in chosen.values() if i.workflow_status == "active"),
        "completed": sum(1 for i in chosen.values() if i.workflow_status == "completed"),
        "cancelled": sum(1 for i in chosen.values() if i.workflow_status == "cancelled"),
        "succeeded": len(succeeded),
        "failed": len(finished) - len(succeeded),
        "success_rate_pct": round(100 * len(succeeded) / len(finished), 2) if finished else None,
        "durations": durations,
        "spent": spent,
        "entries": entries,
        "stuck": sorted(stuck),
        "paths": paths,
    }


async def test_template_figures_match_an_independent_count(api: Api, engine: AsyncEngine) -> None:
    code = unique_code("ANALYTICS")
    created = await api.request("POST", "/api/v1/workflow-template", json=template(code, STATES))
    assert created.status_code == 201, created.text
    head = created.json()
    graph = [StateNode.model_validate(s) for s in head["workflow_graph"]["states"]]
    await write_instances(engine, code, head["id"], graph, SCRIPTS, T0)

    # One more instance through the real worker: started, reviewed and done now (in no window below but "all").
    live = await api.start(code)
    for target in (1, 2):
        assert (await api.transition(live["instance_id"], target)).status_code == 200

    instances, events = await raw_rows(engine, code)
    assert len(instances) == len(SCRIPTS) + 1
    # No event was written twice by the retried writes.
    assert len({(e.workflow_data_id, e.seq, e.event_type) for e in events}) == len(events)

    windows: list[tuple[datetime | None, datetime | None]] = [(None, None), (T0, T0 + timedelta(days=10))]
    for start, end in windows:
        params = {k: v.isoformat() for k, v in (("from", start), ("to", end)) if v is not None}
        response = await api.request("GET", f"/api/v1/analytics/templates/{code}", role="viewer", params=params)
        assert response.status_code == 200, response.text
        got = response.json()
        want = expected_figures(instances, events, start, end, datetime.now(UTC))
        for key in ("started", "active", "completed", "cancelled", "succeeded", "failed", "success_rate_pct"):
            assert got[key] == want[key], (key, got[key], want[key])
        assert close(got["duration_seconds"]["p50"], percentile(want["durations"], 0.5))
        assert close(got["duration_seconds"]["p95"], percentile(want["durations"], 0.95))
        assert close(got["duration_seconds"]["average"], sum(want["durations"]) / len(want["durations"]))
        by_state = {s["state_id"]: s for s in got["states"]}
        assert {k: s["entries"] for k, s in by_state.items()} == dict(want["entries"])
        for state_id, values in want["spent"].items():
            figures = by_state[state_id]
            assert figures["left"] == len(values)
            assert close(figures["time_spent_seconds"]["average"], sum(values) / len(values))
            assert close(figures["time_spent_seconds"]["p50"], percentile(values, 0.5))
            assert close(figures["time_spent_seconds"]["p95"], percentile(values, 0.95))
            expected = {0: 1, 1: 2}[state_id]
            assert figures["expected_days"] == expected
            assert close(figures["ratio"], sum(values) / len(values) / (expected * DAY), 0.001)
        assert [b["state_id"] for b in got["bottlenecks"]] == [
            s["state_id"] for s in sorted(got["states"], key=lambda s: -(s["ratio"] or 0)) if (s["ratio"] or 0) > 1
        ]
        assert sorted((s["instance_id"], s["state_id"]) for s in got["stuck"]) == want["stuck"]
        assert got["stuck_count"] == len(want["stuck"])
        assert {tuple(p["state_ids"]): p["instances"] for p in got["paths"]} == dict(want["paths"])
        assert sum(b["instances"] for b in got["duration_histogram"]) == len(want["durations"])
        assert sum(d["finished"] for d in got["success_by_day"]) == len(want["durations"])
        assert sum(d["succeeded"] for d in got["success_by_day"]) == want["succeeded"]

    # In the fixed window: 9 scripted instances, 2 active (both stuck), 1 cancelled, 2 rejected, 4 done.
    fixed = (
        await api.request(
            "GET",
            f"/api/v1/analytics/templates/{code}",
            params={"from": T0.isoformat(), "to": (T0 + timedelta(days=10)).isoformat()},
        )
    ).json()
    assert (fixed["started"], fixed["active"], fixed["cancelled"], fixed["succeeded"], fixed["failed"]) == (
        9,
        2,
        1,
        4,
        3,
    )
    assert fixed["stuck_count"] == 2 and fixed["bottlenecks"][0]["name"] == "Review"

    # The template's own figures: each finish folded in once, by the transaction that recorded it.
    async def folded() -> dict[str, Any] | None:
        got = (await api.request("GET", f"/api/v1/workflow-template/{code}")).json()
        return got if got["success_rate_pct"] is not None else None

    stored = await eventually(folded)
    finished = [i for i in instances if i.workflow_status != "active"]
    ok = sum(1 for i in finished if i.success_flag)
    mean_days = sum((i.completed_ts - i.started_ts).total_seconds() for i in finished) / len(finished) / DAY
    assert (stored["finished_count"], stored["succeeded_count"]) == (len(finished), ok)
    assert stored["success_rate_pct"] == round(100 * ok / len(finished), 2)
    assert abs(stored["avg_duration_days"] - mean_days) < 0.001


async def test_template_analytics_refuses_bad_requests(api: Api) -> None:
    missing = await api.request("GET", "/api/v1/analytics/templates/NO_SUCH_TEMPLATE")
    assert missing.status_code == 404 and "NO_SUCH_TEMPLATE" in missing.json()["detail"]
    backwards = await api.request(
        "GET",
        "/api/v1/analytics/templates/HS_STD",
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422 and "before" in backwards.json()["detail"]
    naive = await api.request("GET", "/api/v1/analytics/templates/HS_STD", params={"from": "2026-02-01T00:00:00"})
    assert naive.status_code == 422 and "timezone" in naive.json()["detail"]
    for number in ("0.5", "8.9e-277", "1700000000"):
        refused = await api.request("GET", "/api/v1/analytics/templates/HS_STD", params={"to": number})
        assert refused.status_code == 422 and "ISO 8601" in refused.json()["detail"]
    assert (await api.request("GET", "/api/v1/analytics/templates/HS_STD", role=None)).status_code == 401


async def test_instance_events_are_paginated(api: Api) -> None:
    code = unique_code("EVENTS")
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, STATES))).status_code == 201
    started = await api.start(code)
    instance = started["instance_id"]
    for target in (1, 2):
        assert (await api.transition(instance, target)).status_code == 200
    everything = (
        await api.request("GET", f"/api/v1/workflow-instance/{instance}/events", params={"limit": 200})
    ).json()
    assert everything["total"] == len(everything["items"]) and everything["next_cursor"] is None
    assert [e["to_state_id"] for e in everything["items"] if e["event_type"] == "state_transition"] == [0, 1, 2]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.request("GET", f"/api/v1/workflow-instance/{instance}/events", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything["items"]]
    bad = await api.request("GET", f"/api/v1/workflow-instance/{instance}/events", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"
    deep = await api.request("GET", "/api/v1/workflow-instance", params={"offset": 10_001})
    assert deep.status_code == 422 and "cursor" in deep.text
    unknown = await api.request("GET", f"/api/v1/workflow-instance/{uuid.uuid4()}/events")
    assert unknown.status_code == 404
