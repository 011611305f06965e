"""Seed 004's optimizer for a process template (issue 26 §4) on fixed recorded history, each figure
counted by hand: a state over its expected time, a path out of a state no instance took, a state
rarely reached, and a note where too few instances left a state to call its unused path unused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api
from tests.support.process import insert_history, node, template, unique_code

# open (expected 1 day) -> won | review | escalated; review -> won | lost.
STATES = [
    node(0, [], [1, 2, 4], name="open", avg_duration_days=1),
    node(1, [0, 2], [], name="won"),
    node(2, [0], [1, 3], name="review", avg_duration_days=3),
    node(3, [2], [], name="lost", success=False),
    node(4, [0], [], name="escalated", success=False),
]


async def advised(api: Api, engine: AsyncEngine) -> tuple[str, dict[str, Any]]:
    """60 instances: 58 went open (2 days) -> won, 2 went open -> review (1 day) -> won. None was
    escalated and none lost."""
    code = unique_code("ADV")
    created = await api.request("POST", "/api/v1/workflow-template", json=template(code, STATES))
    assert created.status_code == 201, created.text
    start = datetime.now(UTC) - timedelta(days=30)
    walks = [([(0, start), (1, start + timedelta(days=2))], "completed") for _ in range(58)]
    walks += [
        ([(0, start), (2, start + timedelta(days=2)), (1, start + timedelta(days=3))], "completed") for _ in range(2)
    ]
    await insert_history(engine, code, walks)
    found = await api.request("GET", f"/api/v1/analytics/templates/{code}/recommendations", role="viewer")
    assert found.status_code == 200, found.text
    return code, found.json()


async def test_template_recommendations_count_what_was_recorded(api: Api, engine: AsyncEngine) -> None:
    _, advice = await advised(api, engine)
    assert advice["version"] == 1 and advice["basis"] == "60 instances of v1"
    kinds = [(r["kind"], r["subjects"]) for r in advice["items"]]
    assert kinds == [
        ("over_expected_time", ["open"]),  # 2 days against 1: twice; review's 1 day is under its 3
        ("transition_never_taken", ["open", "escalated"]),  # 60 left open, none to escalated
        ("rarely_reached", ["review"]),  # 2 of 60 = 3.3 %
        ("rarely_reached", ["lost"]),
        ("rarely_reached", ["escalated"]),
    ]
    slow = advice["items"][0]
    assert slow["figures"] == {"visits": 60, "expected_days": 1.0, "mean_days": 2.0, "ratio": 2.0}
    assert advice["items"][1]["figures"] == {"departures": 60}
    assert advice["items"][2]["figures"] == {"reached": 2, "started": 60, "share": round(2 / 60, 4)}
    # review -> lost was never taken either, but only 2 instances left review: a note, not a call.
    assert advice["notes"] == ["review: 2 instances left it, fewer than 20; too few to call a path out of it unused"]
    missing = await api.request("GET", "/api/v1/analytics/templates/NOPE_X/recommendations", role="viewer")
    assert missing.status_code == 404
