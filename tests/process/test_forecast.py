"""Forecasts per running instance (issue 26), checked against figures computed by hand on a 3-state toy
DAG: A (the start) goes to B (success) or C (failure). The recorded history is 40 stays of A: 10 went to
B after 1 day, 20 to B after 3 days, 10 to C after 2 days; two instances are still in A, one for a
minute and one for 1.5 days (censored stays).

The stay in A by Kaplan-Meier: at 1 d, 10 of the 41 still at risk leave (the one-minute stay dropped
out), S = 31/41; the 1.5-day stay drops out, and at 2 d 10 of 30 leave, S = 31/41 * 2/3 = 62/123. So
the masses are 1 d: 30/123, 2 d: 31/123, 3 d: 62/123. For the instance a minute into A: P(success) =
30/40 (branching counts completed stays only), P(remaining <= 2.5 d - 1 min) = 61/123, so the p50 and
the p90 are both 3 d - 1 min. For the one 1.5 days in: only stays longer than 1.5 days count, so
P(success) = 20/30 and the residual stay is 0.5 d (31/93 = 1/3) or 1.5 d (2/3): p50 = p90 = 1.5 d, and
1 day left to the deadline (sla_days 2.5) gives 1/3. Times are on the model's grid, so they match
within one grid step (twice the longest stay over 2048 bins)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api
from tests.support.process import insert_history, node, template, unique_code

DAY = 86_400.0


async def toy(api: Api, **graph: Any) -> str:
    code = unique_code("TOY")
    states = [
        node(0, [], [1, 2], name="A", avg_duration_days=2),
        node(1, [0], [], name="B"),
        node(2, [0], [], name="C", success=False),
    ]
    body = template(code, states)
    body["workflow_graph"].update(graph)
    created = await api.request("POST", "/api/v1/workflow-template", json=body)
    assert created.status_code == 201, created.text
    return code


def history(now: datetime) -> list[tuple[list[tuple[int, Any]], str]]:
    past = now - timedelta(days=60)
    walks: list[tuple[list[tuple[int, Any]], str]] = []
    for days, to, count in ((1, 1, 10), (3, 1, 20), (2, 2, 10)):
        for _ in range(count):
            walks.append(([(0, past), (to, past + timedelta(days=days))], "completed"))
    return walks


async def toy_running(api: Api, engine: AsyncEngine, **graph: Any) -> tuple[str, datetime, str, str]:
    """The toy template with its recorded history and the two running instances: (code, now, the one a
    minute into A, the one 1.5 days into A)."""
    code = await toy(api, **graph)
    now = datetime.now(UTC)
    await insert_history(engine, code, history(now))
    fresh, later = await insert_history(
        engine,
        code,
        [([(0, now - timedelta(minutes=1))], "active"), ([(0, now - timedelta(days=1.5))], "active")],
    )
    return code, now, fresh, later


async def forecast(api: Api, instance: str) -> dict[str, Any]:
    answer = await api.request("GET", f"/api/v1/workflow-instance/{instance}/forecast", role="viewer")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def close(value: float, expected: float, tolerance: float) -> bool:
    return math.isclose(value, expected, abs_tol=tolerance)


async def test_forecasts_on_a_toy_dag_match_the_hand_computation(api: Api, engine: AsyncEngine) -> None:
    code, now, fresh, later = await toy_running(api, engine, sla_days=2.5, at_risk_below=0.4)
    # The grid step: twice the longest stay (3 days) over 2048 bins.
    step = 2 * 3 * DAY / 2048

    first = await forecast(api, fresh)
    assert close(first["remaining_p50_seconds"], 3 * DAY - 60, step + 60), first
    assert close(first["remaining_p90_seconds"], 3 * DAY - 60, step + 60), first
    assert first["success_probability"] == 0.75
    assert first["on_time_probability"] == round(61 / 123, 4)
    assert first["risk"] == round(62 / 123, 4)
    assert first["uncertain"] is False and first["reasons"] == []

    second = await forecast(api, later)
    assert close(second["remaining_p50_seconds"], 1.5 * DAY, step), second
    assert close(second["remaining_p90_seconds"], 1.5 * DAY, step), second
    assert second["success_probability"] == round(20 / 30, 4)
    assert second["on_time_probability"] == round(1 / 3, 4)
    deadline = datetime.fromisoformat(second["deadline"])
    assert abs((deadline - (now - timedelta(days=1.5) + timedelta(days=2.5))).total_seconds()) < 1

    # The template's view: both instances, the riskier first, and the expected completions per day
    # summing each instance's chances by the day they fall on (computed here from the hand figures).
    answer = await api.request("GET", f"/api/v1/analytics/templates/{code}/forecast?days=7", role="viewer")
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    assert figures["running"] == 2 and [f["instance_id"] for f in figures["riskiest"]] == [later, fresh]
    assert figures["expected_success_rate"] == round((0.75 + round(20 / 30, 4)) / 2, 4)
    midnight = datetime.fromisoformat(figures["as_of"]).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (datetime.fromisoformat(figures["as_of"]) - midnight).total_seconds()
    expected = [0.0] * 7
    # The fresh instance is a minute into A: what is left of each stay, on the model's grid.
    for seconds, p in (
        (1 * DAY - 60, 30 / 123),
        (2 * DAY - 60, 31 / 123),
        (3 * DAY - 60, 62 / 123),
        (0.5 * DAY, 1 / 3),
        (1.5 * DAY, 2 / 3),
    ):
        expected[int((round(seconds / step) * step + offset) // DAY)] += p
    assert [round(d["completions"], 2) for d in figures["per_day"]] == [round(e, 2) for e in expected]
    assert round(sum(d["completions"] for d in figures["per_day"]), 3) == 2.0


async def test_thin_history_leans_on_the_template_and_says_so(api: Api, engine: AsyncEngine) -> None:
    code = await toy(api)
    now = datetime.now(UTC)
    [instance] = await insert_history(engine, code, [([(0, now - timedelta(hours=12))], "active")])
    answer = await forecast(api, instance)
    # No recorded stay: A takes its expected 2 days (1.5 left), branches are equal (one success of two).
    assert answer["uncertain"] is True and "'A': 0 recorded stays" in answer["reasons"][0]
    assert close(answer["remaining_p50_seconds"], 1.5 * DAY, 4 * DAY / 2048), answer
    assert answer["success_probability"] == 0.5
    assert answer["on_time_probability"] is None and answer["deadline"] is None


async def test_a_finished_or_unknown_instance_has_no_forecast(api: Api, engine: AsyncEngine) -> None:
    code = await toy(api)
    now = datetime.now(UTC)
    [done] = await insert_history(engine, code, [([(0, now - timedelta(days=2)), (1, now)], "completed")])
    finished = await api.request("GET", f"/api/v1/workflow-instance/{done}/forecast", role="viewer")
    assert finished.status_code == 409 and finished.json()["error"] == "not_running"
    unknown = await api.request("GET", "/api/v1/workflow-instance/00000000-0000-4000-8000-000000000000/forecast")
    assert unknown.status_code == 404
    missing = await api.request("GET", "/api/v1/analytics/templates/NO_SUCH_TEMPLATE/forecast")
    assert missing.status_code == 404
    refused = await api.request(
        "POST",
        "/api/v1/workflow-template",
        json=template(unique_code("TOY"), [node(0, [], [])]) | {},
    )
    assert refused.status_code == 201
    bad = template(unique_code("TOY"), [node(0, [], [])])
    bad["workflow_graph"]["at_risk_below"] = 0.5
    answer = await api.request("POST", "/api/v1/workflow-template", json=bad)
    assert answer.status_code == 422 and "set sla_days too" in answer.text


async def test_early_warning_reaches_the_owner_role_before_the_deadline(api: Api, engine: AsyncEngine) -> None:
    """With at_risk_below 0.4, the instance 1.5 days in (1/3 on time) is warned and the fresh one (61/123)
    is not; the warning is raised once, lands in the owner role's inbox with a notification, and leaves
    it when acknowledged. The watch keeps each running instance's forecast for the list's risk order."""
    code, _, fresh, later = await toy_running(api, engine, sla_days=2.5, at_risk_below=0.4, owner_role="operator")
    refused = await api.request("POST", "/api/v1/analytics/forecast-watch", role="viewer")
    assert refused.status_code == 403
    ran = await api.request("POST", "/api/v1/analytics/forecast-watch", role="operator")
    assert ran.status_code == 200, ran.text
    assert later in ran.json()["warned"] and fresh not in ran.json()["warned"]
    again = await api.request("POST", "/api/v1/analytics/forecast-watch", role="operator")
    assert later not in again.json()["warned"]
    async with engine.connect() as conn:
        kept = dict(
            (str(r[0]), r[1])
            for r in await conn.execute(
                text("SELECT instance_id, risk FROM app.instance_forecasts WHERE template_code = :c"), {"c": code}
            )
        )
        notices = (
            await conn.execute(
                text(
                    "SELECT recipient FROM app.d_notification WHERE template = 'deadline_at_risk' AND subject LIKE :s"
                ),
                {"s": f"%{later}%"},
            )
        ).all()
    assert kept == {fresh: round(62 / 123, 4), later: round(2 / 3, 4)}
    assert [n[0] for n in notices] == ["operator"]

    mine = (await api.request("GET", "/api/v1/inbox?kind=at_risk", role="operator")).json()
    item = next(i for i in mine if i["id"] == f"at_risk:{later}")
    assert item["assignee"] == ["operator"] and "33% chance" in item["detail"]
    assert not [i for i in (await api.request("GET", "/api/v1/inbox?kind=at_risk", role="approver")).json()]
    refused = await api.request(
        "POST", f"/api/v1/inbox/{item['id']}/decision", role="approver", json={"action": "acknowledge"}
    )
    assert refused.status_code == 403
    done = await api.request(
        "POST", f"/api/v1/inbox/{item['id']}/decision", role="operator", json={"action": "acknowledge"}
    )
    assert done.status_code == 200, done.text
    left = (await api.request("GET", "/api/v1/inbox?kind=at_risk", role="operator")).json()
    assert f"at_risk:{later}" not in [i["id"] for i in left]
