"""A worker process SIGKILLed in the middle of a session: after a restart the session completes, and
the agent calls that had completed before the kill are not made again."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

from tests.support.agents import session, start, until
from tests.support.api import Api, make_settings, open_api
from tests.support.processes import spawn_worker, worker_env
from tests.support.servers import LlmServer


async def test_worker_killed_mid_session_resumes_without_repeating_calls(
    fresh_database: str, temporal_address: str, llm_server: LlmServer, tmp_path: Path
) -> None:
    queue = f"trellis-session-crash-{uuid.uuid4().hex[:8]}"
    env = worker_env(fresh_database, temporal_address, queue, llm_base_url=llm_server.base_url, llm_api_key="k")
    worker = await spawn_worker(env, tmp_path / "worker.log")
    lifespan, client = await open_api(
        make_settings(fresh_database, temporal_address, queue, llm_base_url=llm_server.base_url)
    )
    api = Api(client)
    c = uuid.uuid4().hex[:10]
    for agent in ("estimator", "resource", "risk"):
        llm_server.script(c, agent, [("slow", 3.0, None)])
    try:
        started = await start(api, c)
        for _ in range(300):  # wait until the planner has finished and the parallel stage is in flight
            if (await session(api, started["session_id"]))["state"] and llm_server.calls(c, "planner"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert llm_server.calls(c, "estimator") == []  # still in flight
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        await asyncio.sleep(1.0)
        worker = await spawn_worker(env, tmp_path / "worker.log")
        done = await until(api, started["session_id"])
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    assert done["session_status"] == "completed", done["status_reason"]
    assert len(llm_server.calls(c, "orchestrator")) == 1 and len(llm_server.calls(c, "planner")) == 1
    assert len(llm_server.calls(c, "validator")) == 1 and len(llm_server.calls(c, "reporter")) == 1
