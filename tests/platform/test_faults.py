"""Faults under load, on the stack `make run` starts: 50 instances transition through HS_STD's longest
success path over HTTP while Temporal is frozen for 5 s, Postgres is shut down (and started again by
the launcher), Postgres is killed (and started again by the launcher), and the worker is killed 3
times. Every instance completes, with exactly the events and entities one instance writes: nothing
lost, nothing duplicated. Bounded: each phase and the whole run have time limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bench.common import free_port
from core.entities.tables import Entity
from core.platform.database import make_engine
from core.platform.embedded import sqlalchemy_url
from core.process.tables import GraphData, WorkflowEvent
from tests.support.processes import alive, children, descendants, processes

# Starts and kills its own process tree: outside the fast tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PATH = [1, 2, 3, 4, 6, 7, 8, 9]
INSTANCES = 50
STEP_PAUSE = 4.0  # seconds between an instance's transitions: about 35 s of load


async def test_instances_complete_exactly_once_through_faults() -> None:
    data = Path(tempfile.mkdtemp(prefix="trellis-faults-"))
    port, temporal_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TRELLIS_DATABASE_URL", "TRELLIS_TEMPORAL_ADDRESS")} | {
        "TRELLIS_DATA_DIR": str(data),
        "TRELLIS_API_PORT": str(port),
        "TRELLIS_TEMPORAL_PORT": str(temporal_port),
        "TRELLIS_TEMPORAL_UI_PORT": str(free_port()),
        "TRELLIS_RATE_LIMIT": "100000/minute",
        "TRELLIS_WORKFLOW_SANDBOX": "false",  # as `make run` runs the worker (the suite's default is on)
    }
    log = (data / "launcher.log").open("wb")
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.run_local", cwd=ROOT, env=env, stdout=log, stderr=log
    )
    run = uuid.uuid4().hex[:8]
    retried: Counter[str] = Counter()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=90, limits=httpx.Limits(max_connections=60)
        ) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            for _ in range(300):  # and the launcher has finished starting up
                if "Trellis is running" in (data / "launcher.log").read_text(errors="replace"):
                    break
                await asyncio.sleep(0.2)
            http.headers["Authorization"] = f"Bearer {(data / 'admin.key').read_text().strip()}"

            async def call(method: str, path: str, **kwargs: object) -> httpx.Response | None:
                try:
                    response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
                except httpx.TransportError as exc:  # the API restarting, or its connection cut
                    retried[type(exc).__name__] += 1
                    return None
                if response.status_code >= 500 or response.status_code in (409, 429):
                    retried[f"{response.status_code} {response.json().get('error')}"] += 1
                return response

            async def drive(index: int) -> str:
                key = {"Idempotency-Key": f"faults-{run}-{index}"}
                body = {"template_code": "HS_STD", "entity": {"name": f"faults-{run}-{index}"}}
                started = None
                for _ in range(2000):
                    started = await call("POST", "/api/v1/workflow-instance", json=body, headers=key)
                    if started is not None and started.status_code == 201:
                        break
                    await asyncio.sleep(0.3)
                assert started is not None and started.status_code == 201
                instance_id = str(started.json()["instance_id"])
                for target in PATH:
                    await asyncio.sleep(STEP_PAUSE)  # keep the load on while the faults land
                    while True:
                        moved = await call(
                            "PUT", f"/api/v1/workflow-instance/{instance_id}/transition", json={"to_state_id": target}
                        )
                        if moved is not None and moved.status_code == 200:
                            break
                        # The answer may be lost while the move happened: ask where the instance is.
                        seen = await call("GET", f"/api/v1/workflow-instance/{instance_id}")
                        if (
                            seen is not None
                            and seen.status_code == 200
                            and seen.json()["current_state"]["id"] == target
                        ):
                            break
                        await asyncio.sleep(0.3)
                return instance_id

            drivers = asyncio.ensure_future(asyncio.gather(*(drive(i) for i in range(INSTANCES))))
            await asyncio.sleep(2)
            # Temporal frozen for 5 s.
            [temporal] = [
                p
                for p in processes(f"--port {temporal_port}")
                if "start-dev" in Path(f"/proc/{p}/cmdline").read_text(errors="replace").replace("\0", " ")
            ]
            os.kill(temporal, signal.SIGSTOP)
            await asyncio.sleep(5)
            os.kill(temporal, signal.SIGCONT)
            await asyncio.sleep(2)
            # Postgres shut down (fast), then killed: the launcher starts it again each time.
            for how in (signal.SIGINT, signal.SIGKILL):
                postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, how)
                for _ in range(300):
                    pid_file = data / "postgres" / "postmaster.pid"
                    if pid_file.exists() and int(pid_file.read_text().split()[0]) != postmaster:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2)
            # The worker killed 3 times.
            assert not drivers.done(), "the load must still be running when the worker dies"
            for _ in range(3):
                for pid in children(launcher.pid, f"{ROOT}/worker.py"):
                    os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(4)
            instance_ids = await asyncio.wait_for(drivers, timeout=420)

        database_url = sqlalchemy_url(f"postgresql://postgres:@/postgres?host={_socket_dir(data)}")
        engine = make_engine(database_url, pool_size=1)
        try:
            ids = [uuid.UUID(i) for i in instance_ids]
            async with engine.connect() as conn:
                outcomes = Counter(
                    (
                        await conn.execute(
                            select(GraphData.workflow_status, GraphData.last_seq).where(GraphData.id.in_(ids))
                        )
                    ).all()
                )
                kinds = dict(
                    (
                        await conn.execute(
                            select(WorkflowEvent.event_type, func.count())
                            .where(WorkflowEvent.workflow_data_id.in_(ids))
                            .group_by(WorkflowEvent.event_type)
                        )
                    ).all()
                )
                entities = dict(
                    (
                        await conn.execute(
                            select(Entity.entity_type, func.count())
                            .where(Entity.name.like(f"%faults-{run}-%"))
                            .group_by(Entity.entity_type)
                        )
                    ).all()
                )
        finally:
            await engine.dispose()
    finally:
        leftovers = descendants(launcher.pid) if launcher.returncode is None else []
        if launcher.returncode is None:
            launcher.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(launcher.wait(), timeout=90)
            except TimeoutError:
                launcher.kill()
                await launcher.wait()
        log.close()
        for pid in leftovers + processes(str(data)):  # whatever the launcher left behind
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        output = (data / "launcher.log").read_text(errors="replace")
        shutil.rmtree(data, ignore_errors=True)

    assert outcomes == Counter({("completed", 9): INSTANCES}), outcomes
    assert kinds == {
        "state_transition": INSTANCES * 9,
        "entity_created": INSTANCES * 5,
        "entity_updated": INSTANCES * 4,
        "instance_completed": INSTANCES,
    }
    assert entities == {t: INSTANCES for t in ("cust", "quote", "order", "task", "invoice")}
    # The faults happened (the launcher restarted what died) while the load ran (checked above). Clients
    # mostly do not even see them: transitions wait in Temporal while a worker or Postgres is down.
    assert output.count("worker exited with") >= 3 and output.count("Postgres restarted") >= 2, dict(retried)


def _socket_dir(data: Path) -> str:
    """The embedded Postgres's socket folder, from its postmaster.pid (line 5)."""
    return (data / "postgres" / "postmaster.pid").read_text().splitlines()[4]
