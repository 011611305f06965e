"""`make bench-scale`: the list and analytics endpoints against a database at the seed's scale.

Seeds the database first when it is not (scripts/seed_scale.py: 100,000 instances, about 1,000,000
events), starts a Temporal dev server and the API as its own process, then times each endpoint over
HTTP on loopback, sequentially (one request at a time: latency, not throughput): every list with its
filters, an offset page at the cap (10,000) and cursor pages tens of thousands of rows deep; each
analytics call; then every console page as a signed-in admin, whole, and each list walked by its "Next
page" links; then the forecasts (issue 26): every active instance of each template, cold (the model
learned from the template's whole history, as on the first call after the cache's TTL) and with the
model kept, and one instance. Prints a Markdown table and writes bench-results/scale.json. The
targets (issue 27's, tighter than issues 12 and 22's): every list page p95 ≤ 20 ms, an admin's
all-kinds inbox p95 ≤ 50 ms, each analytics call ≤ 150 ms, console pages p95 ≤ 150 ms; forecasting a
template's every active instance ≤ 2 s and one instance ≤ 50 ms (issue 26)."""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import free_port, pct, wait_healthy
from core.platform.database import libpq_url
from core.platform.embedded import api_command, start_temporal_dev_server
from scripts import seed_scale

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scale-admin-token-000000000000001"
LIST_TARGET_MS, INBOX_TARGET_MS, ANALYTICS_TARGET_MS, PAGE_TARGET_MS = 20.0, 50.0, 150.0, 150.0
INBOX = "inbox (admin: every kind)"
ALL_FORECAST_TARGET_MS, ONE_FORECAST_TARGET_MS = 2000.0, 50.0
NEXT_PAGE = re.compile(r'href="([^"]+)" rel="next"')


async def timed(http: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await http.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return elapsed, response.json()


async def sample(
    http: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None, n: int = 30, warm: int = 3
) -> list[float]:
    for _ in range(warm):
        await timed(http, path, params)
    return [(await timed(http, path, params))[0] for _ in range(n)]


async def deep_cursor(
    http: httpx.AsyncClient, path: str, params: dict[str, Any], pages: int
) -> tuple[list[float], str]:
    """Walk ``pages`` pages of 200 by cursor; the time of each page, and the cursor of the last one."""
    times: list[float] = []
    cursor: str | None = None
    for _ in range(pages):
        elapsed, page = await timed(http, path, {**params, "limit": 200, **({"cursor": cursor} if cursor else {})})
        times.append(elapsed)
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert cursor is not None, f"{path} has fewer than 2 pages"
    return times, cursor


async def console_session(http: httpx.AsyncClient, base: str) -> None:
    """Sign the client in to the console as a browser does (login cookie, form, session cookie)."""
    form = await http.get("/ui/login")
    token = form.cookies["trellis_login"]
    signed = await http.post("/ui/login", data={"csrf": token, "key": TOKEN}, headers={"origin": base})
    if signed.status_code != 303:
        raise RuntimeError(f"console sign-in: {signed.status_code} {signed.text[:300]}")


async def page_time(http: httpx.AsyncClient, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = await http.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return elapsed, response.text


async def console_pages(http: httpx.AsyncClient, refs: dict[str, Any], deep_pages: int) -> dict[str, list[float]]:
    """Every console page a person opens, rendered whole (the time to the last byte of the HTML), and
    each list walked page by page ("Next page") to show deep pages cost what the first does."""
    timings: dict[str, list[float]] = {}
    pages = {
        "home": "/ui",
        "instances": "/ui/instances",
        "instances: template + status + sort by change": "/ui/instances?template=HS_STD&status=active&sort=updated",
        "instances: over expected time": "/ui/instances?stuck=1&status=active",
        "instances: search by customer name": "/ui/instances?q=Scale+customer+12",
        "step executions": "/ui/executions",
        "step executions: failed": "/ui/executions?status=failed",
        "agent sessions": "/ui/sessions",
        "rules": "/ui/rules",
        "dead letters": "/ui/dead-letters?open=1",
        "work queue (admin: everyone's)": "/ui/queue",
        "templates (every version)": "/ui/templates?versions=1",
        "step workflows": "/ui/workflows",
        "breakers": "/ui/breakers",
        "an instance": f"/ui/instances/{refs['instance']}",
        "a session": f"/ui/sessions/{refs['session']}",
    }
    for name, path in pages.items():
        for _ in range(2):
            await page_time(http, path)
        timings[name] = [(await page_time(http, path))[0] for _ in range(20)]
    for name, path in (
        ("instances", "/ui/instances"),
        ("step executions", "/ui/executions"),
        ("agent sessions", "/ui/sessions"),
    ):
        walked: list[float] = []
        for _ in range(deep_pages):
            elapsed, body = await page_time(http, path)
            walked.append(elapsed)
            found = NEXT_PAGE.search(body)
            if found is None:
                break
            path = html.unescape(found.group(1))
        timings[f"{name}: pages 1-{len(walked)} by Next page (50 each)"] = walked
    return timings


def references(url: str) -> dict[str, Any]:
    """Ids the requests need, read straight from the database."""
    with psycopg.connect(libpq_url(url)) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            assert row is not None, sql
            return row[0]

        return {
            "instance": str(one("SELECT id FROM app.d_industry_workflow_graph_data ORDER BY last_seq DESC LIMIT 1")),
            "entity_type": one("SELECT entity_type FROM app.d_entity GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"),
            "rule": str(one("SELECT rule_id FROM app.f_rule_execution GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")),
            "session": one(
                "SELECT session_id FROM app.orchestrator_agent_log GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            "workflow": one(
                "SELECT workflow_name FROM app.workflow_executions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            "codes": [
                r[0] for r in conn.execute("SELECT DISTINCT code FROM app.d_industry_workflow_graph_head ORDER BY 1")
            ],
            # One active instance per template, and how many are active (what a forecast of all covers).
            "active": {
                r[0]: {"instance": str(r[1]), "count": r[2]}
                for r in conn.execute(
                    "SELECT template_code, min(id::text), count(*) FROM app.d_industry_workflow_graph_data "
                    "WHERE workflow_status = 'active' GROUP BY 1 ORDER BY 1"
                )
            },
            "counts": {
                table: one(f"SELECT count(*) FROM app.{table}")
                for table in (
                    "d_industry_workflow_graph_data",
                    "f_industry_workflow_events",
                    "d_entity",
                    "f_rule_execution",
                    "orchestrator_agent_log",
                    "work_item",
                    "workflow_executions",
                )
            },
        }


async def measure(http: httpx.AsyncClient, refs: dict[str, Any], deep_pages: int) -> dict[str, Any]:
    lists: dict[str, list[float]] = {}
    instances = "/api/v1/workflow-instance"
    entities = f"/api/v1/entities/{refs['entity_type']}"
    executions = f"/api/v1/workflow-automation/{refs['rule']}/executions"
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("instances: first page", instances, {}),
        ("instances: template + status", instances, {"template_code": "HS_STD", "status": "active"}),
        ("instances: current state", instances, {"state_id": 3}),
        ("instances: offset 10,000", instances, {"offset": 10_000}),
        ("instance events", f"{instances}/{refs['instance']}/events", {}),
        ("entities: first page", entities, {}),
        ("entities: status + name", entities, {"status": "Completed", "name": "customer 9"}),
        ("entities: offset 10,000", entities, {"offset": 10_000}),
        ("rule executions", executions, {}),
        ("rule executions: failed", executions, {"status": "failed"}),
        ("dead letters", "/api/v1/webhook-dead-letters", {}),
        ("agent session logs", f"/api/v1/orchestrator/session/{refs['session']}/logs", {}),
        (
            "step executions: workflow + failed",
            "/api/v1/workflow-executions",
            {"workflow": refs["workflow"], "status": "failed"},
        ),
        ("step executions: offset 10,000", "/api/v1/workflow-executions", {"offset": 10_000}),
        ("work queue (an assignee's)", "/api/v1/orchestrator/queue", {"assignee": "operator-user", "limit": 50}),
        (INBOX, "/api/v1/inbox", {}),
        ("templates", "/api/v1/workflow-template", {}),
        ("rules", "/api/v1/workflow-automation", {}),
        ("agents", "/api/v1/orchestrator/agents", {}),
        ("step workflows", "/api/v1/workflows", {}),
    ]
    for name, path, params in cases:
        lists[name] = await sample(http, path, params)
    for name, path in (
        ("instances", instances),
        ("entities", entities),
        ("step executions", "/api/v1/workflow-executions"),
    ):
        walked, cursor = await deep_cursor(http, path, {}, deep_pages)
        depth = len(walked) * 200
        lists[f"{name}: cursor pages 1-{len(walked)} (200 each)"] = walked
        lists[f"{name}: cursor page at row {depth:,}"] = await sample(http, path, {"cursor": cursor, "limit": 50})
    analytics: dict[str, list[float]] = {}
    for code in refs["codes"]:
        analytics[f"template {code}"] = await sample(http, f"/api/v1/analytics/templates/{code}", n=5, warm=1)
    analytics["template HS_STD, last 30 days"] = await sample(
        http,
        "/api/v1/analytics/templates/HS_STD",
        {"from": time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 30 * 86400))},
        n=5,
        warm=1,
    )
    analytics["automation"] = await sample(http, "/api/v1/analytics/automation", n=5, warm=1)
    analytics["agents"] = await sample(http, "/api/v1/analytics/agents", n=5, warm=1)
    analytics["queue"] = await sample(http, "/api/v1/analytics/queue", n=5, warm=1)
    analytics[f"step workflow {refs['workflow']} metrics"] = await sample(
        http, f"/api/v1/workflows/{refs['workflow']}/metrics", {"days": 90}, n=5, warm=1
    )
    return {"lists": lists, "analytics": analytics, "forecasts": await forecasts(http, refs)}


async def forecasts(http: httpx.AsyncClient, refs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per template, each figure the first call of its kind: half the templates learn their model
    through one instance's forecast, the other half through every active instance's (cold: what the
    first call after the cache's TTL pays); then every active instance's and one instance's with the
    model kept (the API keeps it TRELLIS_FORECAST_MODEL_SECONDS, 300 s, longer than this run)."""
    out: dict[str, dict[str, Any]] = {}
    for n, (code, active) in enumerate(sorted(refs["active"].items())):
        one = f"/api/v1/workflow-instance/{active['instance']}/forecast"
        every = f"/api/v1/analytics/templates/{code}/forecast"
        cold_one = cold_all = None
        if n % 2 == 0:
            cold_one = (await timed(http, one))[0]
        else:
            cold_all = (await timed(http, every))[0]
        out[code] = {
            "active": active["count"],
            "one_cold": cold_one,
            "all_cold": cold_all,
            "all_kept": await sample(http, every, n=5, warm=0),
            "one_kept": await sample(http, one, n=20, warm=0),
        }
    return out


def report(results: dict[str, Any], refs: dict[str, Any]) -> str:
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "Rows: " + ", ".join(f"{t} {n:,}" for t, n in refs["counts"].items()),
        "",
        "| list endpoint | p50 ms | p95 ms | ≤ 20 ms (the inbox: ≤ 50 ms) |",
        "|---|---:|---:|:---:|",
    ]
    for name, times in results["lists"].items():
        p95 = pct(times, 95)
        target = INBOX_TARGET_MS if name == INBOX else LIST_TARGET_MS
        lines.append(f"| {name} | {pct(times, 50):.1f} | {p95:.1f} | {'yes' if p95 <= target else 'NO'} |")
    lines += ["", "| console page (whole HTML) | p50 ms | p95 ms | ≤ 150 ms |", "|---|---:|---:|:---:|"]
    for name, times in results.get("pages", {}).items():
        p95 = pct(times, 95)
        lines.append(f"| {name} | {pct(times, 50):.1f} | {p95:.1f} | {'yes' if p95 <= PAGE_TARGET_MS else 'NO'} |")
    lines += [
        "",
        "| forecast: template | active | every active, cold ms | every active, model kept p50 ms "
        "| one, cold ms | one, model kept p50 / max ms | ≤ 2 s all, ≤ 50 ms one |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for code, f in results.get("forecasts", {}).items():
        every = max(f["all_cold"] or 0.0, max(f["all_kept"]))
        one = max(f["one_kept"])
        met = every <= ALL_FORECAST_TARGET_MS and one <= ONE_FORECAST_TARGET_MS
        cold_all = "—" if f["all_cold"] is None else f"{f['all_cold']:.0f}"
        cold_one = "—" if f["one_cold"] is None else f"{f['one_cold']:.0f}"
        lines.append(
            f"| {code} | {f['active']:,} | {cold_all} | {pct(f['all_kept'], 50):.0f} | {cold_one} "
            f"| {pct(f['one_kept'], 50):.1f} / {one:.1f} | {'yes' if met else 'NO'} |"
        )
    lines += ["", "| analytics call | p50 ms | max ms | ≤ 150 ms |", "|---|---:|---:|:---:|"]
    for name, times in results["analytics"].items():
        worst = max(times)
        lines.append(
            f"| {name} | {pct(times, 50):.0f} | {worst:.0f} | {'yes' if worst <= ANALYTICS_TARGET_MS else 'NO'} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--deep-pages", type=int, default=250, help="cursor pages of 200 walked per list")
    parser.add_argument("--folder", type=Path, default=seed_scale.FOLDER)
    args = parser.parse_args()
    url = seed_scale.database_url(args.folder)
    per = args.instances // 5
    await asyncio.to_thread(seed_scale.seed, url, args.instances, per, per, per)  # it runs its own event loop
    refs = references(url)
    workdir = Path(tempfile.mkdtemp(prefix="trellis-scale-"))
    temporal = await start_temporal_dev_server(db_file=workdir / "temporal.db")
    port = free_port()
    env = {
        **os.environ,
        "TRELLIS_DATABASE_URL": url,
        "TRELLIS_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TRELLIS_TASK_QUEUE": "trellis-scale",
        "TRELLIS_API_KEYS": f"{TOKEN}:admin:scale-admin",
        "TRELLIS_RATE_LIMIT": "100000000/minute",
    }
    api = await asyncio.create_subprocess_exec(*api_command("127.0.0.1", port), cwd=ROOT, env=env)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            await wait_healthy(http, [api])
            results = await measure(http, refs, args.deep_pages)
            await console_session(http, f"http://127.0.0.1:{port}")
            results["pages"] = await console_pages(http, refs, args.deep_pages)
    finally:
        api.terminate()
        await api.wait()
        await temporal.shutdown()
    table = report(results, refs)
    print(table)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps({"references": refs, "results": results}, indent=2, default=str))
    (out / "scale.md").write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
