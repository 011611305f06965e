"""Runs that people watch while they run must still replay (decision 0027).

A query answered while a local activity's result waits for the workflow makes the worker complete the
workflow task early and start another, so whatever the workflow records after that result lands in the
next task. On replay the result is handed over inside the first task, before the next task's patch
markers are known: a ``workflow.patched()`` asked right after the result returns False and the run
fails with a nondeterminism error. Patches are therefore asked before the local activity they follow.

The split depends on timing, so each run here is watched by a loop of queries (the API's live views)
while several run at once; before the fix about one run in twenty of the step executions failed to
replay. Every history must replay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from temporalio.client import Client, WorkflowHistory

from tests.replay.test_replay import replayer
from tests.support import histories
from tests.support.api import Api
from tests.support.process import node, template, unique_code
from tests.support.servers import LlmServer, WebhookServer

RUNS = 25  # of each kind, at once: with 12 the old code failed too rarely to be caught


async def _watched(api: Api, path: str, run: Awaitable[histories.Ref]) -> histories.Ref:
    """The run, while its live view is asked for (a workflow query) as fast as the API answers."""

    async def watch() -> None:
        while True:
            await api.request("GET", path, role="viewer")

    watcher = asyncio.create_task(watch())
    try:
        return await run
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _instance_with_deadlines(api: Api, code: str) -> histories.Ref:
    """An instance moved through states with an expected duration (each arms a deadline alert)."""
    started = await api.start(code, name="Watched")
    instance = started["instance_id"]

    async def moves() -> histories.Ref:
        for state in (1, 2, 3):
            assert (await api.transition(instance, state)).status_code == 200
        return started["workflow_id"], None

    return await _watched(api, f"/api/v1/workflow-instance/{instance}", moves())


async def test_watched_runs_replay(
    api: Api, temporal_client: Client, webhook_server: WebhookServer, llm_server: LlmServer
) -> None:
    stage = histories.Stage(api, api, temporal_client, f"http://127.0.0.1:{webhook_server.port}")
    code = unique_code("WATCHED")
    states = [
        node(0, [], [1]),
        node(1, [0], [2], avg_duration_days=1),
        node(2, [1], [3], avg_duration_days=2),
        node(3, [2], []),
    ]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, states))).status_code == 201
    # step_execution polls its execution's live view (a query) until it ends; its agent.call looks the
    # agent up in a local activity right before the policy patch.
    refs = await asyncio.gather(
        *(histories.step_execution(stage) for _ in range(RUNS)),
        *(_instance_with_deadlines(api, code) for _ in range(RUNS)),
    )
    failures: list[str] = []
    for workflow_id, run_id in refs:
        history: WorkflowHistory = await temporal_client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        try:
            await replayer().replay_workflow(history)
        except Exception as exc:  # the replayer's nondeterminism error, reported per run
            failures.append(f"{workflow_id}: {exc}")
    assert failures == []
