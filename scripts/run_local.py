"""`make run`: Trellis on its embedded defaults, data kept in TRELLIS_DATA_DIR across restarts.

Starts what is not configured (Postgres via pgserver, the Temporal dev server with its Web UI),
migrates the database, loads the industry packs, then runs the worker and the API as child
processes until Ctrl-C, and stops everything cleanly. It supervises them meanwhile: a worker or API
that exits is restarted with backoff, and a Postgres whose postmaster died is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx

from core.platform.codec import new_key
from core.platform.embedded import (
    api_command,
    postgres_running,
    restart_postgres,
    start_postgres,
    start_temporal_dev_server,
)
from core.platform.migrate import upgrade_database_async
from core.platform.settings import get_settings

logger = logging.getLogger("trellis.run")
ROOT = Path(__file__).resolve().parent.parent


def _kept(path: Path, make: Callable[[], str]) -> str:
    """A stable local secret, created once and kept (owner-only) in the data folder."""
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _local_admin_key(data_dir: Path) -> str:
    return _kept(data_dir / "admin.key", lambda: secrets.token_urlsafe(32))


def _local_payload_keys(data_dir: Path) -> str:
    """Payload encryption on by default: a key made once; TRELLIS_PAYLOAD_KEYS replaces it."""
    return _kept(data_dir / "payload.keys", lambda: f"local1:{new_key()}")


async def _wait_healthy(url: str, supervise: Callable[[], None], limit_seconds: float = 90.0) -> None:
    """Announce nothing until the API answers (it migrates and loads the packs first), supervising the
    children meanwhile: one that dies during start-up is restarted like any other."""
    deadline = asyncio.get_running_loop().time() + limit_seconds
    async with httpx.AsyncClient() as client:
        while True:
            supervise()
            try:
                if (await client.get(url, timeout=2.0)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(f"the API did not answer at {url} within {limit_seconds:.0f}s; see the log above")
            await asyncio.sleep(0.3)


class Supervised:
    """A child process kept running: restarted with exponential backoff when it exits, the backoff
    forgotten once it has stayed up for a minute."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log  # the child's own output: kept out of the terminal, which shows what matters
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.started = 0.0
        self.restart_at: float | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own handle; ours closes here
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self.restart_at = None
        logger.info("%s started (pid %s)", self.name, self.process.pid)

    def check(self) -> None:
        now = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            if self.failures and now - self.started > 60:
                self.failures = 0
            return
        if self.restart_at is None:
            self.failures += 1
            delay = min(30.0, 2.0 ** (self.failures - 1))
            code = self.process.returncode if self.process is not None else None
            logger.error(
                "%s exited with %s; restarting in %.0fs (failure %d); its output is in %s",
                self.name,
                code,
                delay,
                self.failures,
                self.log,
            )
            self.restart_at = now + delay
        elif now >= self.restart_at:
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def main() -> None:
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    _log_to(logs / "trellis.log")
    env = dict(os.environ)
    postgres = None
    temporal = None
    children: list[Supervised] = []
    try:
        database_url = settings.database_url
        if not database_url:
            postgres, database_url = start_postgres(data_dir / "postgres")
            logger.info("Postgres (pgserver) running with data in %s", data_dir / "postgres")
        payload_keys = settings.payload_keys or _local_payload_keys(data_dir)
        temporal_address = settings.temporal_address
        if not temporal_address:
            temporal = await start_temporal_dev_server(
                db_file=data_dir / "temporal.db",
                port=settings.temporal_port,
                ui=True,
                ui_port=settings.temporal_ui_port,
                # The UI decodes payloads through the API's codec endpoint (for people with an API key).
                ui_codec_endpoint=f"http://{settings.api_host}:{settings.api_port}/codec",
                log_level="error",  # its warnings (slow calls under load) are not the operator's business here
            )
            temporal_address = temporal.client.service_client.config.target_host
        api_keys = settings.api_keys
        generated_key = None
        if not api_keys:
            generated_key = _local_admin_key(data_dir)
            api_keys = f"{generated_key}:admin:local-admin"
        env.update(
            TRELLIS_DATABASE_URL=database_url,
            TRELLIS_TEMPORAL_ADDRESS=temporal_address,
            TRELLIS_API_KEYS=api_keys,
            TRELLIS_PAYLOAD_KEYS=payload_keys,
        )
        await upgrade_database_async(database_url)
        children.append(Supervised("worker", [sys.executable, str(ROOT / "worker.py")], env, logs / "worker.log"))
        children.append(Supervised("api", api_command(settings.api_host, settings.api_port), env, logs / "api.log"))
        for child in children:
            child.start()
        base = f"http://{settings.api_host}:{settings.api_port}"

        def supervise() -> None:
            for child in children:
                child.check()

        await _wait_healthy(f"{base}/healthz", supervise)
        lines = [
            "",
            "Trellis is running (Ctrl-C stops everything).",
            f"  Console       {base}/ui   (sign in with an API key)",
            f"  API docs      {base}/docs",
            f"  Temporal UI   http://127.0.0.1:{settings.temporal_ui_port}"
            if temporal
            else f"  Temporal      {temporal_address} (external)",
            f"  Data folder   {data_dir}",
            f"  Logs          {logs}   (trellis.log, worker.log, api.log)",
        ]
        if generated_key:
            lines += [
                f"  Admin API key {generated_key}   (kept in {data_dir / 'admin.key'})",
                f"  Try: curl -H 'Authorization: Bearer {generated_key}' {base}/api/v1/workflow-template",
            ]
        else:
            lines.append("  Authenticate with 'Authorization: Bearer <token>' using a key from TRELLIS_API_KEYS")
        print("\n".join(lines), flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # Supervise until Ctrl-C: a crashed worker or API is restarted (with backoff), and so is the
        # embedded Postgres if its postmaster dies; the stack stays up meanwhile.
        while not stop.is_set():
            if postgres is not None and not postgres_running(postgres):
                logger.error("Postgres is not running; restarting it")
                try:
                    await asyncio.to_thread(restart_postgres, postgres)
                    logger.info("Postgres restarted")
                except Exception:
                    logger.exception("Postgres did not restart; trying again")
            for child in children:
                child.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        for child in children:
            child.stop()
        for child in children:
            child.wait()
        if temporal is not None:
            await temporal.shutdown()
        if postgres is not None:
            postgres.cleanup()
        logger.info("Trellis stopped")


class _ForTheTerminal(logging.Filter):
    """The launcher's own lines, and anyone's warnings; the rest (pgserver's initdb and pg_ctl output,
    Alembic's migration steps) goes to the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("trellis") or record.levelno >= logging.WARNING


def _log_to(file: Path) -> None:
    to_file = logging.FileHandler(file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(to_file)


if __name__ == "__main__":
    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): nothing to act on.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    terminal.addFilter(_ForTheTerminal())
    logging.basicConfig(level=logging.INFO, handlers=[terminal])
    asyncio.run(main())
