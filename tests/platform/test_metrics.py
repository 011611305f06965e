"""Prometheus metrics: the API's /metrics and the worker's exporter, scraped before and after known work.
In the tests the API and the worker share one process, so one runtime: the API proxies the exporter the
worker's activities count on. Counters are read by labels this test alone uses (its template, its
entity type, its agent), so work other tests left running cannot move them."""

from __future__ import annotations

import re
from typing import Any

import httpx

from core.platform import telemetry
from tests.support.agents import case, start, until
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.process import node, template, unique_code
from tests.support.servers import WebhookServer
from tests.support.work import customer, demo

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+0-9.eE]+|NaN|[+-]Inf)$")


def parse(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            samples.append((match.group(1), labels, float(match.group(4))))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))


async def scrape(api: Api) -> tuple[list[Any], list[Any]]:
    from_api = await api.request("GET", "/metrics", role="viewer")
    assert from_api.status_code == 200 and from_api.headers["content-type"].startswith("text/plain")
    address = telemetry.metrics_address()
    assert address is not None and address.startswith("127.0.0.1:")
    async with httpx.AsyncClient() as http:
        from_worker = await http.get(f"http://{address}/metrics")
    assert from_worker.status_code == 200
    return parse(from_api.text), parse(from_worker.text)


async def test_metrics_endpoints_count_what_happened(api: Api, webhook_server: WebhookServer) -> None:
    assert (await api.request("GET", "/metrics", role=None)).status_code == 401
    code = unique_code("METRICS")
    states = [node(0, [], [1]), node(1, [0], [2], approval={"roles": ["approver"]}), node(2, [1], [])]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, states))).status_code == 201
    kind = unique_type("metrics")
    rule = await create_rule(api, kind, [{"type": "call_webhook", "url": webhook_server.url(f"/ok/{kind}")}])
    agent = f"metrics-{case()}"
    created = await api.request(
        "POST",
        "/api/v1/orchestrator/agents",
        json={
            "agent_name": agent,
            "agent_type": "analysis",
            "capabilities": ["counting"],
            "system_prompt": "You are the planner agent.",
            "output_schema": {"type": "object"},
        },
    )
    assert created.status_code == 201, created.text

    _, before = await scrape(api)

    instance = await api.start(code)
    assert (await api.transition(instance["instance_id"], 1)).status_code == 200
    pending = (await api.request("GET", "/api/v1/inbox", role="approver")).json()
    gate = next(i for i in pending if i["link"].endswith(instance["instance_id"]))
    decided = await api.request(
        "POST", f"/api/v1/inbox/{gate['id']}/decision", role="approver", json={"action": "approve"}
    )
    assert decided.status_code == 200, decided.text
    assert (await api.transition(instance["instance_id"], 2)).status_code == 200
    assert (await api.get(instance["instance_id"]))["workflow_status"] == "completed"
    for n in range(2):
        await create_entity(api, kind, f"E{n}")
    await finished_executions(api, rule["id"], 2)
    session = await start(api, case(), agents=[agent, "reporter"])
    assert (await until(api, session["session_id"]))["session_status"] == "completed"
    item = (await demo(api, await customer(api), "operator-user"))[0]
    started = await api.request("POST", f"/api/v1/inbox/work:{item['id']}/decision", json={"action": "start"})
    assert started.status_code == 200, started.text

    from_api, after = await scrape(api)
    assert {n for n, _, _ in from_api} == {n for n, _, _ in after}  # one runtime in this process

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("trellis_transitions_total", template=code) == 3  # start, 0 → 1, 1 → 2 once approved
    assert moved("trellis_instances_finished_total", template=code, outcome="succeeded") == 1
    assert moved("trellis_inbox_items_opened_total", kind="approval") >= 1
    assert moved("trellis_inbox_items_decided_total", kind="approval", action="approve") == 1
    assert moved("trellis_inbox_items_decided_total", kind="work", action="start") == 1
    assert moved("trellis_rule_executions_total", entity_type=kind, outcome="completed") == 2
    assert moved("trellis_webhook_deliveries_total", entity_type=kind, outcome="delivered") == 2
    assert moved("trellis_llm_calls_total", agent=agent, outcome="completed") == 1
    assert moved("trellis_llm_tokens_total", agent=agent, kind="prompt") == 100
    assert moved("trellis_llm_tokens_total", agent=agent, kind="completion") == 50
    cost = moved("trellis_llm_cost_usd_sum", agent=agent, model="gpt-4o-mini")
    assert abs(cost - (100 * 0.001 + 50 * 0.004) / 1000) < 1e-9
    # The Temporal SDK's own metrics are in the same exposition.
    assert moved("temporal_local_activity_execution_latency_count", activity_type="process.enter_state") >= 3
    assert total(after, "temporal_request_total") > 0
