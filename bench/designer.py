"""`make bench-designer`: how fast the server's validators answer the designer (issue 23's target:
within 300 ms of server time for a 60-state template and a 100-step workflow).

Starts Postgres, a Temporal dev server and the API as its own process, generates a 60-state template
(a chain with side branches, approval gates and terminal states) and a 100-step workflow (tool steps
with references, parallel blocks, branches and foreach), and times POST …/validate for each, one
request at a time over loopback (server time plus loopback, no browser). Also the save itself and the
version diff of the two largest versions. Then the designer itself in Debian's chromium (headless, no
GPU): both definitions opened on the canvas, one node dragged across it by 120 pointer moves, and the
page's own frames counted while it moves (issue 23's target: 60 frames per second). Prints Markdown
tables."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright

from bench.common import free_port, pct, wait_healthy
from core.platform.embedded import api_command, start_postgres, start_temporal_dev_server
from scripts.browser import CHROMIUM_FLAGS, chromium

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "designer-admin-token-00000000001"
TARGET_MS = 300.0
TARGET_FPS = 60.0
# Counts the page's frames (requestAnimationFrame) until told to stop; run in the page by the benchmark.
FRAME_COUNTER = """() => { window.__frames = []; window.__counting = true;
  const tick = (t) => { window.__frames.push(t); if (window.__counting) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""


async def drag_frames(base: str, path: str, node_title: str) -> dict[str, float]:
    """Open the designer on ``path``, drag the node titled ``node_title`` across the canvas, and return
    the frame rate and the longest frame while it moved."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(f"{base}/ui/login")
            await page.fill("#key", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/ui")
            began = time.perf_counter()
            await page.goto(f"{base}{path}")
            await page.wait_for_selector("#designer[data-ready=true]")
            opened_ms = (time.perf_counter() - began) * 1000
            target = page.locator("g.d-node", has=page.locator("text.t1", has_text=node_title)).first
            box = await target.bounding_box()
            assert box is not None, f"no node {node_title} on {path}"
            x, y = box["x"] + 20, box["y"] + box["height"] / 2
            await page.mouse.move(x, y)
            await page.mouse.down()
            await page.evaluate(FRAME_COUNTER)
            drag_began = time.perf_counter()
            for i in range(120):
                await page.mouse.move(x + 3 * i, y + (i % 40) * 2)
            seconds = time.perf_counter() - drag_began
            await page.mouse.up()
            frames: list[float] = await page.evaluate("() => { window.__counting = false; return window.__frames; }")
            nodes = await page.locator("g.d-node").count()
        finally:
            await browser.close()
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    return {
        "nodes": nodes,
        "open_ms": opened_ms,
        "fps": (len(frames) - 1) / (frames[-1] - frames[0]) * 1000 if len(frames) > 1 else 0.0,
        "longest_frame_ms": max(gaps, default=0.0),
        "p95_frame_ms": pct(gaps, 95) if gaps else 0.0,
        "drag_s": seconds,
    }


def template(states: int) -> dict[str, Any]:
    """A chain of states, every fifth with an approval gate and a side exit to a failure state."""
    nodes: list[dict[str, Any]] = []
    main = list(range(0, states - states // 5))
    for i in main:
        last = i == main[-1]
        nodes.append(
            {
                "id": i,
                "name": f"step_{i}",
                "parent_ids": [i - 1] if i else [],
                "child_ids": [] if last else [i + 1],
                "entity_name": "job",
                "entity_status": f"S{i}",
                "terminal_flag": last,
                "success": True if last else None,
                "avg_duration_days": 2,
                **({"approval": {"roles": ["approver"]}} if i % 5 == 2 and not last else {}),
            }
        )
    for n, i in enumerate(range(len(main), states)):
        parent = main[min(n * 5 + 1, len(main) - 2)]
        nodes[parent]["child_ids"].append(i)
        nodes.append(
            {
                "id": i,
                "name": f"exit_{i}",
                "parent_ids": [parent],
                "child_ids": [],
                "terminal_flag": True,
                "success": False,
            }
        )
    return {
        "code": "DESIGN_BENCH",
        "name": "Designer bench",
        "industry_sector": "Bench",
        "workflow_graph": {"states": nodes},
    }


def counted(steps: list[dict[str, Any]]) -> int:
    """Every step of a list, nested ones included."""
    total = 0
    for step in steps:
        total += 1
        for kind in ("parallel", "branch", "foreach"):
            block = step.get(kind) or {}
            for key in ("steps", "then", "else"):
                total += counted(block.get(key, []))
            for lane in block.get("branches", []):
                total += counted(lane["steps"])
    return total


def workflow(steps: int) -> dict[str, Any]:
    """About ``steps`` steps: tool steps that read earlier ones, with a parallel, a branch and a foreach
    every ten."""
    body: list[dict[str, Any]] = [
        {"name": "s0", "tool": "entity.create", "params": {"entity_type": "bench", "name": "${input.name}"}}
    ]
    count = 1
    while count < steps:
        n = len(body)
        tool = {"tool": "entity.update", "params": {"id": "${s0.id}", "fields": {"n": "${input.n}"}}}
        if n % 10 == 3:
            lanes = [{"name": f"l{n}_{k}", "steps": [{"name": f"p{n}_{k}", **tool}]} for k in range(2)]
            body.append({"name": f"s{n}", "parallel": {"branches": lanes}})
            count += 3
        elif n % 10 == 6:
            arm = [{"name": f"b{n}", **tool}]
            body.append({"name": f"s{n}", "branch": {"condition": "input.n > 1", "then": arm, "else": []}})
            count += 2
        elif n % 10 == 9:
            body.append({"name": f"s{n}", "foreach": {"items": "${input.items}", "steps": [{"name": f"f{n}", **tool}]}})
            count += 2
        else:
            body.append({"name": f"s{n}", **tool})
            count += 1
    return {"name": "designer_bench", "description": "bench", "steps": body}


async def timed(http: httpx.AsyncClient, method: str, path: str, body: Any, n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        answer = await http.request(method, path, json=body)
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code >= 400 or (path.endswith("/validate") and not answer.json()["valid"]):
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
    return times


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="trellis-designer-"))
    postgres, url = start_postgres(workdir / "postgres")
    temporal = await start_temporal_dev_server(db_file=workdir / "temporal.db")
    port = free_port()
    env = {
        **os.environ,
        "TRELLIS_DATABASE_URL": url,
        "TRELLIS_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TRELLIS_TASK_QUEUE": "trellis-designer-bench",
        "TRELLIS_API_KEYS": f"{TOKEN}:admin:bench-admin",
        "TRELLIS_RATE_LIMIT": "100000000/minute",
    }
    api = await asyncio.create_subprocess_exec(*api_command("127.0.0.1", port), cwd=ROOT, env=env)
    big_template, big_workflow = template(60), workflow(100)
    rows: dict[str, list[float]] = {}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            await wait_healthy(http, [api])
            await timed(http, "POST", "/api/v1/workflow-template/validate", big_template, 3)  # warm-up
            rows["validate a 60-state template"] = await timed(
                http, "POST", "/api/v1/workflow-template/validate", big_template, 30
            )
            await timed(http, "POST", "/api/v1/workflows/validate", big_workflow, 3)
            rows["validate a 100-step workflow"] = await timed(
                http, "POST", "/api/v1/workflows/validate", big_workflow, 30
            )
            rows["save the template (a new version each)"] = await timed(
                http, "POST", "/api/v1/workflow-template", big_template, 10
            )
            rows["diff of two 60-state versions"] = await timed(
                http, "GET", "/api/v1/workflow-template/DESIGN_BENCH/diff?from=1&to=10", None, 30
            )
            await timed(http, "POST", "/api/v1/workflows", big_workflow, 1)
        base = f"http://127.0.0.1:{port}"
        drags = {
            "60-state template": await drag_frames(base, "/ui/designer/templates/DESIGN_BENCH", "step_20"),
            "100-step workflow": await drag_frames(base, "/ui/designer/workflows/designer_bench", "s20"),
        }
    finally:
        api.terminate()
        await api.wait()
        await temporal.shutdown()
        postgres.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    states = len(big_template["workflow_graph"]["states"])
    top, total = len(big_workflow["steps"]), counted(big_workflow["steps"])
    print(f"Template: {states} states. Workflow: {top} top-level steps, {total} in all.")
    print("\n| call | p50 ms | p95 ms | ≤ 300 ms |\n|---|---:|---:|:---:|")
    for name, times in rows.items():
        p95 = pct(times, 95)
        print(f"| {name} | {pct(times, 50):.1f} | {p95:.1f} | {'yes' if p95 <= TARGET_MS else 'NO'} |")
    print("\n| drag on the canvas | nodes | open ms | frames/s | p95 frame ms | longest frame ms | ≥ 60 fps |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for name, d in drags.items():
        ok = "yes" if d["fps"] >= TARGET_FPS * 0.95 else "NO"
        print(
            f"| {name} | {d['nodes']:.0f} | {d['open_ms']:.0f} | {d['fps']:.1f} | {d['p95_frame_ms']:.1f} "
            f"| {d['longest_frame_ms']:.1f} | {ok} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
