"""`make run`'s launcher survives faults: it restarts a killed worker, a killed API and a killed Postgres
postmaster, the stack answering again each time; Ctrl-C then stops everything it started, including
the restarted Postgres. Bounded: every wait has a limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from bench.common import free_port
from tests.support.processes import alive, children, command_line, descendants

# Starts and kills its own process tree: outside the fast tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


async def _until(check: object, seconds: float, what: str) -> object:
    for _ in range(int(seconds * 5)):
        result = await check()  # type: ignore[operator]
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {seconds}s: {what}")


async def test_the_launcher_restarts_what_dies_and_stops_everything() -> None:
    data = Path(tempfile.mkdtemp(prefix="trellis-launcher-"))  # outside root's home, for pgserver
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TRELLIS_DATABASE_URL", "TRELLIS_TEMPORAL_ADDRESS")} | {
        "TRELLIS_DATA_DIR": str(data),
        "TRELLIS_API_PORT": str(port),
        "TRELLIS_TEMPORAL_PORT": str(free_port()),
        "TRELLIS_TEMPORAL_UI_PORT": str(free_port()),
    }
    log = (data / "launcher.log").open("wb")
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.run_local", cwd=ROOT, env=env, stdout=log, stderr=log
    )
    worker_marker, api_marker = f"{ROOT}/worker.py", f"--port {port}"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await _until(healthy, 120, "the stack answers")

            async def announced() -> bool:  # the launcher has finished starting up
                return "Trellis is running" in (data / "launcher.log").read_text(errors="replace")

            await _until(announced, 60, "the launcher announces the stack")
            # A start-up a person can read: the console named, third-party chatter in the log folder.
            said = (data / "launcher.log").read_text(errors="replace")
            banner = said[said.index("Trellis is running") :]
            assert f"http://127.0.0.1:{port}/ui" in banner and str(data / "logs") in banner
            for chatter in ("pgserver:", "Running commandline", "alembic", "initdb", "XDG_RUNTIME_DIR"):
                assert chatter not in said, chatter
            assert "pgserver" in (data / "logs" / "trellis.log").read_text()
            assert len(said[: said.index("Trellis is running")].splitlines()) <= 15, said
            key = (data / "admin.key").read_text().strip()

            for marker in (worker_marker, api_marker):
                [before] = children(launcher.pid, marker)  # the launcher's own child, nobody else's
                os.kill(before, signal.SIGKILL)

                async def replaced(marker: str = marker, before: int = before) -> bool:
                    return bool(set(children(launcher.pid, marker)) - {before})

                await _until(replaced, 60, f"{marker} restarted")
                await _until(healthy, 60, f"the stack answers after {marker} was killed")

            postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGKILL)

            async def postgres_back() -> bool:
                pid_file = data / "postgres" / "postmaster.pid"
                if not pid_file.exists() or int(pid_file.read_text().split()[0]) == postmaster:
                    return False
                return await healthy()

            await _until(postgres_back, 90, "Postgres restarted by the launcher")
            templates = await http.get("/api/v1/workflow-template", headers={"Authorization": f"Bearer {key}"})
            assert templates.status_code == 200 and templates.json()["total"] >= 5
            restarted = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
            started = set(descendants(launcher.pid))

        launcher.send_signal(signal.SIGINT)
        await asyncio.wait_for(launcher.wait(), timeout=90)
        for pid in (*started, restarted):
            assert not alive(pid), f"process {pid} ({command_line(pid)}) outlived the launcher"
    finally:
        leftovers = descendants(launcher.pid) if launcher.returncode is None else []
        if launcher.returncode is None:
            launcher.kill()
            await launcher.wait()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        output = (data / "launcher.log").read_text(errors="replace")
        shutil.rmtree(data, ignore_errors=True)
        print(output[-3000:])  # shown by pytest when the test fails
    assert "exited with" in output and "Postgres restarted" in output
