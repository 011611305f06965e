"""A/B variants of a process template (issue 26): the statistics against textbook formulas worked here
with math.erf, routing that holds its weights over 1,000 starts and keeps a customer on its variant,
the variant recorded on the instance and filterable, the guardrail stopping a worse variant by itself
when an instance finishes (recorded and notified), and promote ending the experiment."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.experiments import statistics
from core.experiments.routing import choose
from core.process.contracts import InstanceCreate
from core.process.starting import prepare_start
from tests.support.api import Api, make_settings
from tests.support.process import insert_history, node, template, unique_code


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_the_statistics_are_the_textbook_ones() -> None:
    # A: 120 of 200 succeeded, B: 90 of 200.
    found = statistics.proportions(120, 200, 90, 200, alpha=0.05)
    assert found is not None
    se = math.sqrt(0.6 * 0.4 / 200 + 0.45 * 0.55 / 200)  # Wald, unpooled
    pooled = math.sqrt(0.525 * 0.475 * (1 / 200 + 1 / 200))
    z = -0.15 / pooled
    assert math.isclose(found.difference, -0.15)
    assert math.isclose(found.low, -0.15 - 1.959964 * se, abs_tol=1e-5)
    assert math.isclose(found.high, -0.15 + 1.959964 * se, abs_tol=1e-5)
    assert math.isclose(found.z, z) and math.isclose(found.p_value, 2 * (1 - phi(abs(z))), abs_tol=1e-9)
    assert round(found.p_value, 4) == 0.0027
    # Durations: means 10 and 12 (variances 4 and 9), 50 and 60 runs: Welch's standard error.
    means = statistics.means(10.0, 4.0, 50, 12.0, 9.0, 60, alpha=0.05)
    assert means is not None
    se = math.sqrt(4 / 50 + 9 / 60)
    assert math.isclose(means.difference, 2.0) and math.isclose(means.low, 2 - 1.959964 * se, abs_tol=1e-5)
    assert math.isclose(means.p_value, 2 * (1 - phi(2 / se)), abs_tol=1e-9)
    assert statistics.proportions(0, 0, 1, 2) is None and statistics.means(1, 1, 1, 1, 1, 5) is None


def test_routing_keeps_weights_and_moves_only_a_removed_variants_keys() -> None:
    keys = [str(uuid.uuid4()) for _ in range(3000)]
    routed = {k: choose(k, [("A", 60), ("B", 30), ("C", 10)]) for k in keys}
    counts = {v: sum(1 for r in routed.values() if r == v) for v in "ABC"}
    # Within 4 standard deviations of the binomial counts (3000 keys).
    for name, weight in (("A", 0.6), ("B", 0.3), ("C", 0.1)):
        assert abs(counts[name] - 3000 * weight) < 4 * math.sqrt(3000 * weight * (1 - weight)), counts
    without_c = {k: choose(k, [("A", 60), ("B", 30)]) for k in keys}
    assert all(without_c[k] == routed[k] for k in keys if routed[k] != "C")


async def two_versions(api: Api) -> str:
    code = unique_code("AB")
    for name in ("first", "second"):
        states = [
            node(0, [], [1, 2], name="open"),
            node(1, [0], [], name="won"),
            node(2, [0], [], name="lost", success=False),
        ]
        created = await api.request("POST", "/api/v1/workflow-template", json=template(code, states, name=name))
        assert created.status_code == 201, created.text
    return code


async def start_experiment(api: Api, code: str, **extra: Any) -> dict[str, Any]:
    body = {
        "subject": code,
        "variants": [{"name": "A", "version": 1, "weight": 70}, {"name": "B", "version": 2, "weight": 30}],
    } | extra
    created = await api.request("POST", "/api/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_starts_follow_the_weights_and_record_the_variant(
    api: Api, engine: AsyncEngine, postgres_url: str
) -> None:
    settings = make_settings(postgres_url, "127.0.0.1:1", "unused")  # prepare_start reads two flags of it
    code = await two_versions(api)
    refused = await api.request("POST", "/api/v1/experiments", role="operator", json={"subject": code, "variants": []})
    assert refused.status_code == 403
    bad = await api.request(
        "POST",
        "/api/v1/experiments",
        json={
            "subject": code,
            "variants": [{"name": "A", "version": 1, "weight": 1}, {"name": "B", "version": 9, "weight": 1}],
        },
    )
    assert bad.status_code == 422 and "has no version 9" in bad.text
    experiment = await start_experiment(api, code)
    again = await api.request(
        "POST",
        "/api/v1/experiments",
        json={
            "subject": code,
            "variants": [{"name": "X", "version": 1, "weight": 1}, {"name": "Y", "version": 2, "weight": 1}],
        },
    )
    assert again.status_code == 409

    # 1,000 starts through the start command's own preparation (what the API and instance.start run
    # before sending the start to Temporal): 70/30 within 4 standard deviations.
    versions: dict[str, int] = {}
    async with engine.connect() as conn:
        for _ in range(1000):
            instance = str(uuid.uuid4())
            prepared = await prepare_start(
                conn, InstanceCreate(template_code=code), instance_id=instance, actor="t", settings=settings
            )
            assert prepared.data.variant is not None
            versions[prepared.data.variant.name] = versions.get(prepared.data.variant.name, 0) + 1
            assert prepared.data.template.version == (1 if prepared.data.variant.name == "A" else 2)
    assert abs(versions["A"] - 700) < 4 * math.sqrt(1000 * 0.7 * 0.3), versions

    # Real starts: a customer (root entity) keeps its variant; the variant is on the instance and filters.
    entity = await api.request("POST", "/api/v1/entities/customer", json={"name": "Stable Co", "fields": {}})
    assert entity.status_code == 201, entity.text
    root = entity.json()["id"]
    seen = set()
    for _ in range(4):
        started = await api.start(code, root_entity_id=root, entity=None)
        seen.add((started["variant"], started["template_version"]))
    assert len(seen) == 1
    [(variant, version)] = seen
    assert version == (1 if variant == "A" else 2)
    listed = await api.request(
        "GET", f"/api/v1/workflow-instance?template_code={code}&variant={variant}", role="viewer"
    )
    assert listed.status_code == 200 and len(listed.json()["items"]) == 4
    assert {i["variant"] for i in listed.json()["items"]} == {variant}
    ended = await api.request("POST", f"/api/v1/experiments/{experiment['id']}/end")
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    after = await api.start(code)
    assert after["variant"] is None and after["template_version"] == 2


async def test_the_guardrail_stops_a_worse_variant_and_promote_ends_the_experiment(
    api: Api, engine: AsyncEngine
) -> None:
    code = await two_versions(api)
    experiment = await start_experiment(api, code, min_sample=30)
    eid = experiment["id"]
    now = datetime.now(UTC)
    past = now - timedelta(days=3)
    # Recorded history: A won 32 of 40, B 12 of 40 (each ended a day after it started).
    for name, version, won in (("A", 1, 32), ("B", 2, 12)):
        walks = [([(0, past), (1 if n < won else 2, past + timedelta(days=1))], "completed") for n in range(40)]
        await insert_history(engine, code, walks, version=version, variant=(eid, name))

    analysis = (await api.request("GET", f"/api/v1/experiments/{eid}", role="viewer")).json()
    [comparison] = analysis["comparisons"]
    assert comparison["enough_data"] is True and "significantly lower" in comparison["verdict"]
    expected = statistics.proportions(32, 40, 12, 40)
    assert expected is not None and math.isclose(comparison["success_rate"]["p_value"], expected.p_value)
    assert analysis["variants"][0]["seconds_per_state"]["open"] == 86400.0
    assert all(v["routing"] for v in analysis["experiment"]["variants"])  # nothing stops before a finish

    # An experiment instance finishing runs the guardrail in its finish transaction: B stops.
    started = await api.start(code)
    assert started["variant"] in ("A", "B")
    assert (await api.transition(started["instance_id"], 1)).status_code == 200
    stopped = (await api.request("GET", f"/api/v1/experiments/{eid}", role="viewer")).json()["experiment"]
    b = next(v for v in stopped["variants"] if v["name"] == "B")
    assert b["routing"] is False and "one-sided p" in b["stopped_reason"]
    for _ in range(6):
        assert (await api.start(code))["variant"] == "A"
    async with engine.connect() as conn:
        events = (
            await conn.execute(
                text("SELECT kind, variant, actor FROM app.experiment_events WHERE experiment_id = :e ORDER BY ts"),
                {"e": eid},
            )
        ).all()
        notified = (
            await conn.execute(
                text(
                    "SELECT recipient FROM app.d_notification WHERE template = 'experiment_guardrail' AND source = :s"
                ),
                {"s": f"experiment:{eid}"},
            )
        ).all()
    assert [tuple(e) for e in events] == [("started", None, "admin-user"), ("variant_stopped", "B", "system:guardrail")]
    assert sorted(n[0] for n in notified) == ["admin", "admin-user"]

    # Promote A (version 1, older than the newest): stored again as the newest, the experiment ends.
    refused = await api.request("POST", f"/api/v1/experiments/{eid}/promote", role="operator", json={"variant": "A"})
    assert refused.status_code == 403
    unknown = await api.request("POST", f"/api/v1/experiments/{eid}/promote", json={"variant": "Z"})
    assert unknown.status_code == 422
    promoted = await api.request("POST", f"/api/v1/experiments/{eid}/promote", json={"variant": "A"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["status"] == "ended" and promoted.json()["promoted"] == "A"
    after = await api.start(code)
    assert after["variant"] is None and after["template_version"] == 3
    versions = (await api.request("GET", f"/api/v1/workflow-template/{code}/versions")).json()
    assert [v["name"] for v in versions] == ["first", "second", "first"]
    twice = await api.request("POST", f"/api/v1/experiments/{eid}/promote", json={"variant": "A"})
    assert twice.status_code == 409
