"""Orchestration part of `make bench`: overhead per agent call = (session wall time, from the POST to
the workflow's result - the scripted LLM server's own reply time on the session's critical path) /
agent calls, against bare Temporal's time per activity in a workflow of as many sequential activities."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from temporalio.client import Client

from bench.bare import BareChainWorkflow, BareInput
from tests.support.servers import LlmServer

STAGES = [["orchestrator"], ["planner"], ["estimator", "resource", "risk"], ["validator"], ["reporter"]]
CALLS = sum(len(s) for s in STAGES)


async def trellis_overhead(http: httpx.AsyncClient, llm: LlmServer, client: Client) -> float:
    case = uuid.uuid4().hex[:10]
    began = time.perf_counter()
    response = await http.post(
        "/api/v1/orchestrator/session", json={"goal": f"[case:{case}] Plan an HVAC installation at 123 Main St"}
    )
    response.raise_for_status()
    session_id = response.json()["session_id"]
    # Waiting on the workflow's result (as the bare side does), not polling the API: a poll every few
    # milliseconds would query the running workflow and load the very worker being measured.
    await client.get_workflow_handle(response.json()["workflow_id"]).result()
    wall = time.perf_counter() - began
    status = (await http.get(f"/api/v1/orchestrator/session/{session_id}")).json()["session_status"]
    if status != "completed":
        raise RuntimeError(f"benchmark session ended {status}")
    # The server's own time on the critical path: each stage waits for its slowest call.
    server = sum(max(r["end"] - r["start"] for agent in stage for r in llm.calls(case, agent)) for stage in STAGES)
    return (wall - server) / CALLS * 1000


async def bare_per_activity(client: Client, queue: str) -> float:
    began = time.perf_counter()
    await client.execute_workflow(
        BareChainWorkflow.run, BareInput(steps=CALLS), id=f"bare-chain-{uuid.uuid4()}", task_queue=queue
    )
    return (time.perf_counter() - began) / CALLS * 1000


async def measure(http: httpx.AsyncClient, llm: LlmServer, client: Client, queue: str, sessions: int) -> dict[str, Any]:
    await trellis_overhead(http, llm, client)  # warm-up
    await bare_per_activity(client, queue)
    trellis: list[float] = []
    bare: list[float] = []
    for _ in range(sessions):  # alternate
        bare.append(await bare_per_activity(client, queue))
        trellis.append(await trellis_overhead(http, llm, client))
    trellis.sort()
    bare.sort()
    result: dict[str, Any] = {
        "calls_per_session": CALLS,
        "trellis_overhead_ms_per_call_p50": trellis[len(trellis) // 2],
        "bare_ms_per_activity_p50": bare[len(bare) // 2],
    }
    result["ratio"] = result["trellis_overhead_ms_per_call_p50"] / result["bare_ms_per_activity_p50"]
    return result
