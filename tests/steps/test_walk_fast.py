"""The step interpreter's control flow in the fast tier (``make test-fast``): the real workflow on the
time-skipping test server (a local binary; timers are skipped, so a retry's minute of backoff takes no
time), with stand-in activities registered by the names the interpreter calls (as temporal-ai-agent's
tests do). No Postgres, no API: what is checked is the walk (references, ``if``, retries and their
backoff, ``parallel``, ``foreach``, ``onError: skip``), not the tools, which the full suite runs for real.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.steps.tools import step_failed
from core.steps.contracts import BeginInput, FinishInput, RunInput, RunResult, StepRecordInput, ToolCall
from core.steps.tools import McpCallOutput
from workflows.steps.interpreter import StepWorkflowRun

pytestmark = pytest.mark.fast


@dataclass
class StandIns:
    """Activities by name: the execution's records are kept in memory; ``fake.*`` tools go through the
    MCP activity's name (any tool the catalogue does not declare does)."""

    calls: list[ToolCall] = field(default_factory=list)
    records: list[StepRecordInput] = field(default_factory=list)
    finished: list[FinishInput] = field(default_factory=list)

    def activities(self) -> list[Any]:
        @activity.defn(name="steps.begin")
        async def begin(data: BeginInput) -> None:
            return None

        @activity.defn(name="steps.record")
        async def record(data: StepRecordInput) -> None:
            self.records.append(data)

        @activity.defn(name="steps.finish")
        async def finish(data: FinishInput) -> None:
            self.finished.append(data)

        @activity.defn(name="tool.mcp")
        async def tool(call: ToolCall) -> McpCallOutput:
            self.calls.append(call)
            if call.tool == "fake.flaky" and call.attempt < 3:
                raise step_failed("fake.flaky: not yet", retryable=True)
            if call.tool == "fake.refuse":
                raise step_failed("fake.refuse: no", retryable=False)
            return McpCallOutput(result=call.params)

        return [begin, record, finish, tool]


@pytest.fixture
async def walk(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[tuple[StandIns, Any]]:
    stand_ins = StandIns()
    queue = f"walk-{uuid.uuid4()}"
    client = time_skipping_env.client

    async def run(steps: list[dict[str, Any]], input: dict[str, Any] | None = None, **config: Any) -> RunResult:
        execution_id = str(uuid.uuid4())
        definition = {"name": "walk", "steps": steps, "config": config}
        data = RunInput(
            execution_id=execution_id,
            workflow="walk",
            version=1,
            definition=definition,
            input=input or {},
            search_attributes=False,  # the Java test server cannot register Trellis's attributes
        )
        return await client.execute_workflow(
            StepWorkflowRun.run, data, id=f"walk-{execution_id}", task_queue=queue, result_type=RunResult
        )

    async with Worker(client, task_queue=queue, workflows=[StepWorkflowRun], activities=stand_ins.activities()):
        yield stand_ins, run


def echo(name: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "tool": "fake.echo", "params": params, **extra}


async def test_references_carry_outputs_and_a_false_if_skips(walk: tuple[StandIns, Any]) -> None:
    stand_ins, run = walk
    done = await run(
        [
            echo("first", {"n": "${input.n}"}),
            echo("second", {"seen": "${first.result.n}"}),
            echo("never", {"x": 1}, **{"if": "${input.go}"}),
        ],
        {"n": 7, "go": False},
    )
    assert done.status == "completed", done.error
    assert [c.params for c in stand_ins.calls] == [{"n": 7}, {"seen": 7}]
    assert [(r.name, r.status) for r in stand_ins.records] == [("never", "skipped")]


async def test_a_retry_waits_its_backoff_on_a_timer_and_then_succeeds(walk: tuple[StandIns, Any]) -> None:
    stand_ins, run = walk
    retry = {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 600_000}  # ten minutes, skipped
    done = await run([{"name": "flaky", "tool": "fake.flaky", "params": {}, "retry": retry}])
    assert done.status == "completed", done.error
    assert [c.attempt for c in stand_ins.calls] == [1, 2, 3]


async def test_a_refusal_is_not_retried_and_on_error_skip_goes_on(walk: tuple[StandIns, Any]) -> None:
    stand_ins, run = walk
    retry = {"maxAttempts": 5, "backoff": "fixed", "initialIntervalMs": 1000}
    failed = await run([{"name": "no", "tool": "fake.refuse", "params": {}, "retry": retry}])
    assert failed.status == "failed" and "fake.refuse: no" in (failed.error or "")
    assert len(stand_ins.calls) == 1

    skipped = await run(
        [
            {"name": "no", "tool": "fake.refuse", "params": {}, "onError": {"strategy": "skip"}},
            echo("after", {"ok": True}),
        ]
    )
    assert skipped.status == "completed", skipped.error
    assert [e.step for e in skipped.step_errors] == ["no"]
    assert stand_ins.calls[-1].params == {"ok": True}


async def test_foreach_keeps_the_items_order_and_parallel_joins(walk: tuple[StandIns, Any]) -> None:
    _, run = walk
    done = await run(
        [
            {
                "name": "each",
                "foreach": {
                    "items": "${input.items}",
                    "as": "line",
                    "concurrency": 3,
                    "steps": [echo("one", {"v": "${line}"})],
                },
            },
            {
                "name": "both",
                "parallel": {
                    "branches": [
                        {"name": "left", "steps": [echo("l", {"side": "left"})]},
                        {"name": "right", "steps": [echo("r", {"side": "right"})]},
                    ]
                },
            },
            echo("join", {"l": "${l.result.side}", "r": "${both.right.r.result.side}"}),
        ],
        {"items": ["a", "b", "c", "d"]},
    )
    assert done.status == "completed", done.error
    assert [item["one"]["result"]["v"] for item in done.output["each"]] == ["a", "b", "c", "d"]
    assert done.output["join"]["result"] == {"l": "left", "r": "right"}
