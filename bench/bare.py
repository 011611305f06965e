"""The baseline: a plain Temporal workflow driven through updates that each run one activity."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker


class BareStep(BaseModel):
    step: int


class BareInput(BaseModel):
    steps: int


@activity.defn(name="bare.step")
async def bare_step(data: BareStep) -> BareStep:
    return data


@workflow.defn(name="BareUpdates")
class BareWorkflow:
    def __init__(self) -> None:
        self._done = 0

    @workflow.run
    async def run(self, data: BareInput) -> int:
        await workflow.wait_condition(lambda: self._done >= data.steps)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._done

    @workflow.update
    async def step(self, data: BareStep) -> BareStep:
        result = await workflow.execute_activity(bare_step, data, start_to_close_timeout=timedelta(seconds=30))
        self._done += 1
        return result


@activity.defn(name="bare.now")
async def bare_now(data: BareStep) -> float:
    return time.time()


@workflow.defn(name="BareFirstActivity")
class BareFirstActivityWorkflow:
    """Baseline for event-to-first-action: start a workflow whose first step is an activity."""

    @workflow.run
    async def run(self, data: BareStep) -> float:
        return await workflow.execute_activity(bare_now, data, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BareChain")
class BareChainWorkflow:
    """Baseline for orchestration overhead: n activities one after the other."""

    @workflow.run
    async def run(self, data: BareInput) -> int:
        for step in range(data.steps):
            await workflow.execute_activity(
                bare_step, BareStep(step=step), start_to_close_timeout=timedelta(seconds=30)
            )
        return data.steps


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    async with Worker(
        client,
        task_queue=args.task_queue,
        workflows=[BareWorkflow, BareFirstActivityWorkflow, BareChainWorkflow],
        activities=[bare_step, bare_now],
        max_concurrent_local_activities=100,
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
