"""The DBOS peer of `make bench` (issue 27): DBOS's shape of a message-driven process, one workflow
per instance that receives 9 messages and runs one step for each, driven at a given concurrency by a
driver in the same process (DBOS runs its workflows in the application's process; there is no server
between them). Each transition is timed from sending the message to reading the event the workflow
sets once its step is recorded, as Trellis's transition is timed from its request to its answer.

Run by bench/run.py as its own process on the benchmark's Postgres (its own database), after the
Trellis rounds, so that both have the machine to themselves; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
import uuid
from typing import Any

from dbos import DBOS, DBOSConfig

from bench.common import pct

STEPS = 9


@DBOS.step()
async def apply_transition(n: int) -> int:
    return n


@DBOS.workflow()
async def peer_instance(steps: int) -> int:
    for n in range(steps):
        message = await DBOS.recv_async("transition", timeout_seconds=120)
        if message is None:
            raise RuntimeError(f"no message for step {n}")
        await apply_transition(int(message))
        await DBOS.set_event_async(f"done-{n}", n)
    return steps


async def drive_one(step_ms: list[float]) -> None:
    handle = await DBOS.start_workflow_async(peer_instance, STEPS)
    workflow_id = handle.get_workflow_id()
    for n in range(STEPS):
        began = time.perf_counter()
        await DBOS.send_async(workflow_id, n, "transition")
        done = await DBOS.get_event_async(workflow_id, f"done-{n}", timeout_seconds=120)
        if done != n:
            raise RuntimeError(f"{workflow_id}: step {n} answered {done!r}")
        step_ms.append((time.perf_counter() - began) * 1000)
    await handle.get_result()


async def round_of(concurrency: int, instances: int) -> dict[str, Any]:
    step_ms: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(instances):
        queue.put_nowait(i)
    done = 0

    async def lane() -> None:
        nonlocal done
        while not queue.empty():
            queue.get_nowait()
            await drive_one(step_ms)
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    return {
        "instances_per_s": done / seconds,
        "p50_ms": pct(step_ms, 50),
        "p99_ms": pct(step_ms, 99),
        "instances": done,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="libpq URL of the peer's own database")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--instances", type=int, default=60)
    args = parser.parse_args()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {
        "name": f"trellis-bench-peer-{uuid.uuid4().hex[:6]}",
        "system_database_url": args.database_url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        await round_of(4, 8)  # warm-up: connections, first-run code paths
        result = await round_of(args.concurrency, args.instances)
    finally:
        DBOS.destroy()
    print(json.dumps({"concurrency": args.concurrency, **result}))


if __name__ == "__main__":
    asyncio.run(main())
