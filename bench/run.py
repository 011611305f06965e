"""`make bench`: Trellis against bare Temporal, measured in the same run on the same server.

* bare:    a plain workflow started, then driven through 9 updates that each run one activity
           (Temporal client → server → worker, no database).
* Trellis: a Home Services instance started through the HTTP API, then driven through the 8
           transitions of its longest success path (0→1→2→3→4→6→7→8→9) through the HTTP API,
           with every database write. (The seed's graph has 9 states on that path, so 8
           transitions; the start enters the 9th state's predecessor chain's first state and is
           reported separately.)

Rounds alternate bare / Trellis at each concurrency level so that drift hits both alike.

The scaling curve (issue 27): bare and Trellis at 1, 5, 20 and 50 concurrent, one round each, and
Trellis again at 20 and 50 with a second worker process on the same task queue; completed instances
per second (counted when an instance's last transition answered, the way Camunda counts completed,
not started) and p50/p99 per transition.

Results: a Markdown table on stdout and ``bench-results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench import automation as bench_automation
from bench import orchestration as bench_orchestration
from bench import scale_out as bench_scale_out
from bench.bare import BareInput, BareStep, BareWorkflow
from bench.common import CpuMeter, find_processes, free_port, pct, wait_healthy
from bench.profile import Profile
from core.platform.database import libpq_url, make_engine
from core.platform.embedded import api_command, start_postgres, start_temporal_dev_server
from tests.support.servers import LlmServer

ROOT = Path(__file__).resolve().parent.parent
PATH = [1, 2, 3, 4, 6, 7, 8, 9]
BARE_STEPS = 9
TOKEN = "bench-operator-token-000000000001"
ADMIN_TOKEN = "bench-admin-token-0000000000001"


@dataclass
class Round:
    kind: str
    concurrency: int
    instances: int = 0
    seconds: float = 0.0
    step_ms: list[float] = field(default_factory=list)
    start_ms: list[float] = field(default_factory=list)


async def bare_instance(client: Client, queue: str, result: Round) -> None:
    began = time.perf_counter()
    handle = await client.start_workflow(
        BareWorkflow.run, BareInput(steps=BARE_STEPS), id=f"bare-{uuid.uuid4()}", task_queue=queue
    )
    result.start_ms.append((time.perf_counter() - began) * 1000)
    for n in range(BARE_STEPS):
        began = time.perf_counter()
        await handle.execute_update(BareWorkflow.step, BareStep(step=n))
        result.step_ms.append((time.perf_counter() - began) * 1000)
    await handle.result()


async def trellis_instance(http: httpx.AsyncClient, result: Round) -> None:
    began = time.perf_counter()
    response = await http.post(
        "/api/v1/workflow-instance", json={"template_code": "HS_STD", "entity": {"name": "Bench Customer"}}
    )
    response.raise_for_status()
    result.start_ms.append((time.perf_counter() - began) * 1000)
    instance_id = response.json()["instance_id"]
    for state in PATH:
        began = time.perf_counter()
        step = await http.put(f"/api/v1/workflow-instance/{instance_id}/transition", json={"to_state_id": state})
        step.raise_for_status()
        result.step_ms.append((time.perf_counter() - began) * 1000)


async def start_latencies(client: Client, queue: str, http: httpx.AsyncClient, count: int) -> dict[str, Any]:
    """An instance start over HTTP (answers with state 0 recorded) against a bare start whose first
    update runs one activity (update-with-start: start + first activity, one round trip), alternating."""
    bare: list[float] = []
    trellis: list[float] = []
    for i in range(count):
        began = time.perf_counter()
        await client.execute_update_with_start_workflow(
            BareWorkflow.step,
            BareStep(step=0),
            start_workflow_operation=WithStartWorkflowOperation(
                BareWorkflow.run,
                BareInput(steps=1),
                id=f"bare-start-{uuid.uuid4()}",
                task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            ),
        )
        bare.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        response = await http.post(
            "/api/v1/workflow-instance", json={"template_code": "HS_STD", "entity": {"name": f"Start {i}"}}
        )
        response.raise_for_status()
        trellis.append((time.perf_counter() - began) * 1000)
    result: dict[str, Any] = {
        "bare_start_first_activity_p50_ms": pct(bare, 50),
        "trellis_start_p50_ms": pct(trellis, 50),
        "bare_start_first_activity_p95_ms": pct(bare, 95),
        "trellis_start_p95_ms": pct(trellis, 95),
    }
    result["ratio"] = result["trellis_start_p50_ms"] / result["bare_start_first_activity_p50_ms"]
    return result


async def run_round(kind: str, concurrency: int, instances: int, drive: Any) -> Round:
    result = Round(kind=kind, concurrency=concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(instances):
        queue.put_nowait(i)

    async def lane() -> None:
        while not queue.empty():
            queue.get_nowait()
            await drive(result)
            result.instances += 1

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


CURVE = {1: 10, 5: 20, 20: 60, 50: 100}  # concurrency: instances in its round
SECOND_WORKER_LEVELS = (20, 50)


async def curve(
    client: Client, bare_queue: str, http: httpx.AsyncClient, spawn_worker: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """The scaling curve: bare, Trellis with one worker, then Trellis with two (``spawn_worker`` starts
    the second and returns a stop coroutine function)."""
    out: dict[str, dict[str, dict[str, float]]] = {"bare": {}, "trellis": {}, "trellis_2_workers": {}}
    for concurrency, instances in CURVE.items():
        for kind in ("bare", "trellis"):
            drive = (
                (lambda r: bare_instance(client, bare_queue, r))
                if kind == "bare"
                else (lambda r: trellis_instance(http, r))
            )
            out[kind][str(concurrency)] = summary([await run_round(kind, concurrency, instances, drive)])
    stop = await spawn_worker()
    try:
        await run_round("trellis", 4, 8, lambda r: trellis_instance(http, r))  # the new worker's warm-up
        for concurrency in SECOND_WORKER_LEVELS:
            found = await run_round("trellis", concurrency, CURVE[concurrency], lambda r: trellis_instance(http, r))
            out["trellis_2_workers"][str(concurrency)] = summary([found])
    finally:
        await stop()
    return out


async def dbos_peer(database_url: str, instances: int) -> dict[str, Any]:
    """bench/dbos_peer.py in its own process at 20 concurrent: its figures as JSON."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.dbos_peer",
        "--database-url",
        database_url,
        "--concurrency",
        "20",
        "--instances",
        str(instances),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=600)
    if child.returncode != 0:
        raise RuntimeError(f"the DBOS peer failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def summary(rounds: list[Round]) -> dict[str, float]:
    steps = [v for r in rounds for v in r.step_ms]
    starts = [v for r in rounds for v in r.start_ms]
    return {
        "p50_ms": pct(steps, 50),
        "p95_ms": pct(steps, 95),
        "p99_ms": pct(steps, 99),
        "start_p50_ms": pct(starts, 50),
        "instances_per_s": sum(r.instances for r in rounds) / sum(r.seconds for r in rounds),
        "samples": len(steps),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per kind and concurrency")
    parser.add_argument("--instances", type=int, default=20, help="instances per round at concurrency 1")
    parser.add_argument("--instances-concurrent", type=int, default=60, help="instances per round at 20")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--event-samples", type=int, default=40, help="sequential events for the latency figures")
    parser.add_argument("--sessions", type=int, default=6, help="agent sessions for the orchestration overhead")
    parser.add_argument("--events", type=int, default=200, help="events in the throughput burst (20 at a time)")
    parser.add_argument("--start-samples", type=int, default=20, help="sequential starts, Trellis and bare each")
    parser.add_argument("--scale-instances", type=int, default=60, help="instances through 2 workers and 2 APIs")
    args = parser.parse_args()

    args.port = args.port or free_port()
    llm = LlmServer()
    llm.start()
    workdir = Path(tempfile.mkdtemp(prefix="trellis-bench-"))
    postgres, database_url = start_postgres(workdir / "postgres")
    env_server = await start_temporal_dev_server(db_file=workdir / "temporal.db")
    address = env_server.client.service_client.config.target_host
    client = env_server.client
    env = {
        **os.environ,
        "TRELLIS_DATABASE_URL": database_url,
        "TRELLIS_TEMPORAL_ADDRESS": address,
        "TRELLIS_TASK_QUEUE": "trellis-bench",
        "TRELLIS_API_KEYS": f"{TOKEN}:operator:bench,{ADMIN_TOKEN}:admin:bench-admin",
        # The benchmark measures throughput, not the per-key limiter (a client of its own would have keys).
        "TRELLIS_RATE_LIMIT": "100000000/minute",
        "TRELLIS_RATE_LIMIT_SESSION_STARTS": "100000000/minute",
        "TRELLIS_LLM_BASE_URL": llm.base_url,
        "TRELLIS_LLM_API_KEY": "bench",
        # As `make run` runs the worker. Importing the tests' LLM server turned the suite's sandbox on.
        "TRELLIS_WORKFLOW_SANDBOX": "false",
    }
    bare_queue = "bare-bench"
    # The worker's and the API's output go to files, shown (their last lines) if the run fails: a child
    # that dies mid-run would otherwise leave only the driver's ReadError.
    logs = {name: (workdir / f"{name}.log").open("wb") for name in ("worker", "api")}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "worker.py"), cwd=ROOT, env=env, stdout=logs["worker"], stderr=logs["worker"]
        ),
        await asyncio.create_subprocess_exec(
            *api_command("127.0.0.1", args.port), cwd=ROOT, env=env, stdout=logs["api"], stderr=logs["api"]
        ),
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bare",
            "--address",
            address,
            "--task-queue",
            bare_queue,
            cwd=ROOT,
            env=env,
        ),
    ]
    results: dict[str, Any] = {}
    start: dict[str, Any] = {}
    scale: dict[str, Any] = {}
    scaling: dict[str, Any] = {}
    peer: dict[str, Any] = {}
    automation: dict[str, Any] = {}
    orchestration: dict[str, Any] = {}
    try:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{args.port}",
            limits=limits,
            timeout=60,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as http:
            await wait_healthy(http, children)
            # Warm-up: worker caches, connection pools, first-run code paths.
            await run_round("bare", 4, 8, lambda r: bare_instance(client, bare_queue, r))
            await run_round("trellis", 4, 8, lambda r: trellis_instance(http, r))
            # Where the CPU goes at 20 concurrent: seconds per instance by process group.
            groups = {
                "temporal server": find_processes(str(workdir / "temporal.db")),
                "postgres": find_processes(str(workdir / "postgres")),
                "trellis worker": [children[0].pid],
                "trellis api": [children[1].pid],
                "bare worker": [children[2].pid],
                "benchmark driver": [os.getpid()],
            }
            meters = {"bare": CpuMeter(groups), "trellis": CpuMeter(groups)}
            for concurrency, instances in ((1, args.instances), (20, args.instances_concurrent)):
                rounds: dict[str, list[Round]] = {"bare": [], "trellis": []}
                for _ in range(args.rounds):
                    for kind in ("bare", "trellis"):
                        drive = (
                            (lambda r: bare_instance(client, bare_queue, r))
                            if kind == "bare"
                            else (lambda r: trellis_instance(http, r))
                        )
                        if concurrency == 20:
                            meters[kind].start()
                        rounds[kind].append(await run_round(kind, concurrency, instances, drive))
                        if concurrency == 20:
                            meters[kind].stop()
                bare, trellis = summary(rounds["bare"]), summary(rounds["trellis"])
                results[f"c{concurrency}"] = {
                    "bare": bare,
                    "trellis": trellis,
                    "ratio": {k: trellis[k] / bare[k] for k in ("p50_ms", "p95_ms", "p99_ms", "instances_per_s")},
                }
            measured = args.rounds * args.instances_concurrent
            results["c20"]["cpu_seconds_per_instance"] = {
                kind: {name: used / measured for name, used in meter.used.items()} for kind, meter in meters.items()
            }
            # One more Trellis round at 20 concurrent, not counted, with py-spy sampling the worker.
            profile = Profile(children[0].pid, workdir / "worker-profile.txt")
            if await profile.start():
                await run_round("trellis", 20, args.instances_concurrent, lambda r: trellis_instance(http, r))
                await profile.stop()
            worker_profile = profile.summary()
            start = await start_latencies(client, bare_queue, http, args.start_samples)
            engine = make_engine(database_url, pool_size=4)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{args.port}",
                    timeout=60,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                ) as admin:
                    automation = await bench_automation.measure(
                        http, admin, engine, client, bare_queue, args.event_samples, args.events
                    )
            finally:
                await engine.dispose()
            orchestration = await bench_orchestration.measure(http, llm, client, bare_queue, args.sessions)

            async def spawn_worker() -> Any:
                with (workdir / "worker-2.log").open("wb") as log:
                    second = await asyncio.create_subprocess_exec(
                        sys.executable, str(ROOT / "worker.py"), cwd=ROOT, env=env, stdout=log, stderr=log
                    )

                async def stop() -> None:
                    second.terminate()
                    await second.wait()

                return stop

            scaling = await curve(client, bare_queue, http, spawn_worker)
        # Scale-out last, with the single stack stopped, so both runs have the machine to themselves.
        for child in children[:2]:
            child.terminate()
            await child.wait()
        engine = make_engine(database_url, pool_size=2)
        try:
            scale = await bench_scale_out.measure(
                engine, database_url, address, (TOKEN, ADMIN_TOKEN), args.scale_instances, 20
            )
        finally:
            await engine.dispose()
        scale["ratio_vs_single_stack"] = scale["instances_per_s"] / results["c20"]["trellis"]["instances_per_s"]
        # The DBOS peer last, alone on the machine, on the same Postgres (its own schema).
        peer = await dbos_peer(libpq_url(database_url), args.instances_concurrent)
        peer["trellis_vs_dbos"] = results["c20"]["trellis"]["instances_per_s"] / peer["instances_per_s"]
    except BaseException:
        for name, child in zip(("worker", "api"), children, strict=False):
            tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
            print(f"--- {name} (exit {child.returncode}), last lines:\n{tail}", file=sys.stderr)
        raise
    finally:
        for handle in logs.values():
            handle.close()
        for child in children:
            if child.returncode is None:
                child.terminate()
                await child.wait()
        await env_server.shutdown()
        postgres.cleanup()
        llm.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "results": results,
                "start": start,
                "automation": automation,
                "orchestration": orchestration,
                "scale_out": scale,
                "curve": scaling,
                "dbos_peer": peer,
                "worker_profile_c20": worker_profile,
            },
            indent=2,
        )
    )
    lines = [
        f"Machine: {machine}",
        "",
        "| concurrency | kind | p50 ms | p95 ms | p99 ms | start p50 ms | instances/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, data in results.items():
        for kind in ("bare", "trellis"):
            d = data[kind]
            lines.append(
                f"| {level[1:]} | {kind} | {d['p50_ms']:.1f} | {d['p95_ms']:.1f} | {d['p99_ms']:.1f} "
                f"| {d['start_p50_ms']:.1f} | {d['instances_per_s']:.2f} |"
            )
        r = data["ratio"]
        lines.append(
            f"| {level[1:]} | **Trellis/bare** | {r['p50_ms']:.2f}x | {r['p95_ms']:.2f}x | "
            f"{r['p99_ms']:.2f}x | | {r['instances_per_s']:.2f}x |"
        )
    cpu = results["c20"]["cpu_seconds_per_instance"]
    lines += [
        "",
        "CPU seconds per instance at 20 concurrent, by process (start + 8 transitions; bare: start + 9 updates)",
        "",
        "| kind | " + " | ".join(cpu["bare"]) + " | total |",
        "|---|" + "---|" * (len(cpu["bare"]) + 1),
    ]
    for kind in ("bare", "trellis"):
        values = cpu[kind]
        lines.append(
            f"| {kind} | "
            + " | ".join(f"{v * 1000:.0f} ms" for v in values.values())
            + f" | {sum(values.values()) * 1000:.0f} ms |"
        )
    a = automation
    lines += [
        "",
        f"Automation ({a['active_rules']} active rules): event committed → first action applied, "
        "vs bare start → first activity",
        "",
        "| kind | p50 ms | p95 ms | per second |",
        "|---|---|---|---|",
        f"| bare (start → first activity; workflows/s) | {a['bare']['p50_ms']:.1f} | {a['bare']['p95_ms']:.1f} "
        f"| {a['bare']['per_s']:.1f} |",
        f"| trellis (event → first action; events/s) | {a['trellis']['p50_ms']:.1f} | {a['trellis']['p95_ms']:.1f} "
        f"| {a['trellis']['per_s']:.1f} |",
        f"| **Trellis/bare** | {a['ratio']['p50_ms']:.2f}x | {a['ratio']['p95_ms']:.2f}x "
        f"| {a['ratio']['per_s']:.2f}x |",
    ]
    lines += [
        "",
        "Instance start over HTTP (answers with state 0 recorded) vs bare update-with-start running one activity",
        "",
        "| trellis p50 ms | bare p50 ms | Trellis/bare |",
        "|---|---|---|",
        f"| {start['trellis_start_p50_ms']:.1f} | {start['bare_start_first_activity_p50_ms']:.1f} "
        f"| {start['ratio']:.2f}x |",
    ]
    o = orchestration
    lines += [
        "",
        f"Orchestration: overhead per agent call ({o['calls_per_session']} calls per session; session wall time "
        "minus the scripted LLM server's reply time on the critical path), vs bare time per activity",
        "",
        "| trellis ms per call | bare ms per activity | Trellis/bare |",
        "|---|---|---|",
        f"| {o['trellis_overhead_ms_per_call_p50']:.1f} | {o['bare_ms_per_activity_p50']:.1f} | {o['ratio']:.2f}x |",
    ]
    lines += [
        "",
        "Scaling curve: completed instances per second (start + 8 transitions; bare: start + 9 updates) and "
        "p50 / p99 ms per transition, one round per level",
        "",
        "| concurrent | bare inst/s | Trellis inst/s | Trellis/bare | Trellis, 2 workers inst/s "
        "| bare p50 / p99 | Trellis p50 / p99 | Trellis 2 workers p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in (str(c) for c in CURVE):
        b, t = scaling["bare"][level], scaling["trellis"][level]
        two = scaling["trellis_2_workers"].get(level)
        two_rate = f"{two['instances_per_s']:.2f}" if two else "—"
        two_times = f"{two['p50_ms']:.1f} / {two['p99_ms']:.1f}" if two else "—"
        lines.append(
            f"| {level} | {b['instances_per_s']:.2f} | {t['instances_per_s']:.2f} "
            f"| {t['instances_per_s'] / b['instances_per_s']:.2f}x | {two_rate} "
            f"| {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {t['p50_ms']:.1f} / {t['p99_ms']:.1f} | {two_times} |"
        )
    lines += [
        "",
        "DBOS peer (bench/dbos_peer.py, DBOS's shape: a workflow receiving 9 messages, one step each; driver in "
        "its process) at 20 concurrent, alone on the machine after the Trellis rounds",
        "",
        "| DBOS inst/s | DBOS p50 / p99 ms | Trellis c20 inst/s | Trellis/DBOS |",
        "|---|---|---|---|",
        f"| {peer['instances_per_s']:.2f} | {peer['p50_ms']:.1f} / {peer['p99_ms']:.1f} "
        f"| {results['c20']['trellis']['instances_per_s']:.2f} | {peer['trellis_vs_dbos']:.2f}x |",
    ]
    so = scale
    lines += [
        "",
        f"Scale-out: {so['workers']} workers and {so['apis']} APIs on one server and database, {so['instances']} "
        f"instances at {so['concurrency']} concurrent (plus one rule per new customer)",
        "",
        "| instances/s | vs one worker + one API (c20) | duplicate effects | all completed |",
        "|---|---|---|---|",
        f"| {so['instances_per_s']:.2f} | {so['ratio_vs_single_stack']:.2f}x | {so['duplicates']} "
        f"| {so['all_completed']} |",
    ]
    if worker_profile.get("available"):
        lines += [
            "",
            f"Trellis worker at 20 concurrent, py-spy ({worker_profile['samples']} samples while running Python)",
            "",
            "| part | share |",
            "|---|---:|",
            *[f"| {part} | {share:.0%} |" for part, share in worker_profile["parts"].items()],
            "",
            "| the worker's job | share |",
            "|---|---:|",
            *[f"| {path} | {share:.0%} |" for path, share in worker_profile["paths"].items()],
            "",
            "| on top of the stack (self) | share |",
            "|---|---:|",
            *[f"| `{name}` | {share:.1%} |" for name, share in worker_profile["top_functions"].items()],
            "",
            "| innermost Trellis function | share |",
            "|---|---:|",
            *[f"| `{name}` | {share:.1%} |" for name, share in worker_profile["trellis_functions"].items()],
        ]
    else:
        lines += ["", f"No worker profile: {worker_profile.get('problem')}"]
    print("\n".join(lines))


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so the servers and child processes above are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
