"""Automation, agent and queue analytics against independent counts over the raw rows, on scenarios
run through the real worker that include retries: a webhook answered 500 twice before its 200, an LLM
call answered 500 before its valid reply. A retried activity must count once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.agents import case, start, until
from tests.support.analytics import close, percentile
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import LlmServer, WebhookServer
from tests.support.work import act, customer, demo


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def test_automation_figures_match_the_raw_rows(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer
) -> None:
    # Rule A: a webhook answered 500, 500, then 200 (one delivery after retries), at most 2 executions.
    kind_a = unique_type("an_a")
    flaky = f"/flaky/{unique_type('an')}"
    rule_a = await create_rule(
        api, kind_a, [{"type": "call_webhook", "url": webhook_server.url(flaky)}], max_executions=2
    )
    for n in range(3):
        await create_entity(api, kind_a, f"A{n}")
    await finished_executions(api, rule_a["id"], 3)
    # Rule B: a webhook that always fails: dead-lettered, then redelivered once.
    kind_b = unique_type("an_b")
    failing = f"/fail/{unique_type('an')}"
    rule_b = await create_rule(api, kind_b, [{"type": "call_webhook", "url": webhook_server.url(failing)}])
    await create_entity(api, kind_b, "B0")
    await finished_executions(api, rule_b["id"], 1)
    letters = (await api.request("GET", f"/api/v1/webhook-dead-letters?rule_id={rule_b['id']}")).json()["items"]
    redelivered = await api.request(
        "POST", f"/api/v1/webhook-dead-letters/{letters[0]['id']}/redeliver", role="operator"
    )
    assert redelivered.status_code == 200
    assert len(webhook_server.at(flaky)) == 4  # 3 attempts for the first event, 1 for the second

    for rule in (rule_a, rule_b):
        got = (await api.request("GET", "/api/v1/analytics/automation", params={"rule_id": rule["id"]})).json()
        [figures] = got["rules"]
        raw = await rows(
            engine,
            "SELECT r.status, r.reason, r.finished_ts, e.created_ts AS event_ts FROM app.f_rule_execution r "
            "LEFT JOIN app.f_entity_event e ON e.id = r.event_id WHERE r.rule_id = :rule",
            rule=rule["id"],
        )
        statuses = Counter(r.status for r in raw)
        assert figures["executions"] == len(raw)
        assert (figures["completed"], figures["failed"], figures["skipped"]) == (
            statuses["completed"],
            statuses["failed"],
            statuses["skipped"],
        )
        latencies = [(r.finished_ts - r.event_ts).total_seconds() * 1000 for r in raw if r.status == "completed"]
        assert close(figures["event_to_completion_p50_ms"], percentile(latencies, 0.5), 0.1)
        assert close(figures["event_to_completion_p95_ms"], percentile(latencies, 0.95), 0.1)
        deliveries = await rows(
            engine,
            "SELECT 1 FROM app.f_action_log WHERE rule_id = :rule AND action_type = 'call_webhook'",
            rule=rule["id"],
        )
        letters_raw = await rows(
            engine, "SELECT * FROM app.f_webhook_dead_letter WHERE rule_id = :rule", rule=rule["id"]
        )
        assert got["webhooks"]["deliveries"] == len(deliveries)
        assert got["webhooks"]["dead_letters"] == len(letters_raw)
        assert got["webhooks"]["redelivered"] == sum(1 for d in letters_raw if d.redelivered_ts is not None)
        if rule is rule_a:
            assert (figures["completed"], figures["skipped"], len(deliveries)) == (2, 1, 2)
            assert figures["skips"] == [{"reason": "skipped", "count": 1}]
        else:
            assert figures["failed"] == 1 and figures["failures"] == [
                {"reason": "action 1 (call_webhook) failed", "count": 1}
            ]
            assert got["webhooks"] == {"deliveries": 0, "dead_letters": 1, "redelivered": 1, "redelivered_ok": 0}


async def test_agent_figures_match_the_raw_rows(api: Api, engine: AsyncEngine, llm_server: LlmServer) -> None:
    ok, invalid, refused = case(), case(), case()
    llm_server.script(ok, "estimator", ["500"])  # retried by Temporal: still one call
    llm_server.script(ok, "planner", ["malformed"])  # asked again inside the call: one call, both rounds' tokens
    llm_server.script(invalid, "planner", ["malformed", "schema-miss"])
    llm_server.script(refused, "planner", ["400"])
    sessions = {}
    for c in (ok, invalid, refused):
        started = await start(api, c, agents=["planner", "estimator", "reporter"])
        sessions[c] = (await until(api, started["session_id"]))["session_id"]
    assert len(llm_server.calls(ok, "estimator")) == 2

    prices = {"input": 0.001, "output": 0.004}  # the test settings' price of gpt-4o-mini
    for c, session_id in sessions.items():
        got = (await api.request("GET", "/api/v1/analytics/agents", params={"session_id": session_id})).json()
        raw = await rows(engine, "SELECT * FROM app.orchestrator_agent_log WHERE session_id = :s", s=session_id)
        statuses = Counter(r.execution_status for r in raw)
        totals = got["totals"]
        assert totals["calls"] == len(raw)
        assert (totals["completed"], totals["invalid_outputs"], totals["errors"]) == (
            statuses["completed"],
            statuses["invalid_output"],
            statuses["error"],
        )
        assert totals["prompt_tokens"] == sum(r.prompt_tokens for r in raw)
        assert totals["completion_tokens"] == sum(r.completion_tokens for r in raw)
        completed_cost = sum(
            (r.prompt_tokens * prices["input"] + r.completion_tokens * prices["output"]) / 1000
            for r in raw
            if r.execution_status == "completed"
        )
        assert abs(totals["cost_usd"] - completed_cost) < 1e-6
        for figures in got["by_agent_model"]:
            mine = [r for r in raw if r.agent_name == figures["agent_name"] and r.model == figures["model"]]
            assert figures["calls"] == len(mine)
            latencies = [float(r.latency_ms) for r in mine if r.execution_status == "completed"]
            assert close(figures["latency_p50_ms"], percentile(latencies, 0.5), 0.1)
            assert close(figures["latency_p95_ms"], percentile(latencies, 0.95), 0.1)
            assert figures["priced"] == (figures["model"] == "gpt-4o-mini")
        assert sum(d["calls"] for d in got["by_day"]) == len(raw)
        [one] = got["sessions"]
        assert one["session_id"] == session_id and one["agents"] == len({r.agent_name for r in raw})
        if c == ok:
            assert statuses == Counter({"completed": len(raw)})
            [estimator] = [f for f in got["by_agent_model"] if f["agent_name"] == "estimator"]
            assert estimator["calls"] == 1
            [planner] = [r for r in raw if r.agent_name == "planner"]
            assert planner.prompt_tokens == 200
        elif c == invalid:
            assert statuses["invalid_output"] == 1
        else:
            assert statuses["error"] == 1
            [error] = [r for r in raw if r.execution_status == "error"]
            assert "refused" in error.error and error.finished_ts is not None


async def test_queue_figures_match_the_raw_rows(api: Api, engine: AsyncEngine) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    entity = await customer(api, revenue_impact_tier=3)
    items = await demo(api, entity, "operator-user")
    assert len(items) == 3
    assert (await act(api, "operator", items[0]["id"], "status", "PATCH", status="completed")).status_code == 200
    assert (await act(api, "operator", items[1]["id"], "snooze", days=2)).status_code == 200
    assert (await act(api, "operator", items[2]["id"], "skip", reason="not relevant")).status_code == 200
    until_ts = datetime.now(UTC) + timedelta(seconds=1)
    window = {"from": since.isoformat(), "to": until_ts.isoformat()}
    got = (await api.request("GET", "/api/v1/analytics/queue", role="viewer", params=window)).json()
    raw = await rows(
        engine,
        "SELECT i.*, d.name AS definition_name FROM app.work_item i JOIN app.work_definition d "
        "ON d.id = i.definition_id WHERE i.created_ts >= :a AND i.created_ts < :b",
        a=since,
        b=until_ts,
    )
    assert got["items"] == len(raw) >= 3
    assert {c["key"]: c["count"] for c in got["by_status"]} == dict(Counter(r.status for r in raw))
    assert {c["key"]: c["count"] for c in got["by_definition"]} == dict(Counter(r.definition_name for r in raw))
    completed = [r for r in raw if r.status == "completed"]
    skipped = [r for r in raw if r.status == "skipped"]
    hours = [(r.completed_at - r.created_ts).total_seconds() / 3600 for r in completed]
    assert close(got["time_to_complete_p50_hours"], percentile(hours, 0.5), 0.001)
    assert got["skip_rate_pct"] == round(100 * len(skipped) / (len(completed) + len(skipped)), 2)
    assert got["snooze_rate_pct"] == round(100 * sum(1 for r in raw if r.snoozed_at) / len(raw), 2)
    open_items = [r for r in raw if r.status in ("not_started", "underway", "snoozed")]
    assert sum(c["count"] for c in got["by_label"]) == len(open_items)
