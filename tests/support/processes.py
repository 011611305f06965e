"""Trellis processes that tests start, and kill, themselves."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker_env(database_url: str, temporal_address: str, task_queue: str, **settings: object) -> dict[str, str]:
    """The environment of a worker process on the given database, server and queue; ``settings`` are
    more TRELLIS_* settings by their field names (``smtp_port=2525`` is ``TRELLIS_SMTP_PORT``)."""
    return {
        **os.environ,
        "TRELLIS_DATABASE_URL": database_url,
        "TRELLIS_TEMPORAL_ADDRESS": temporal_address,
        "TRELLIS_TASK_QUEUE": task_queue,
        **{f"TRELLIS_{name.upper()}": str(value) for name, value in settings.items()},
    }


async def spawn_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "worker.py"), cwd=ROOT, env=env, stdout=sink, stderr=sink
        )


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped is not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(parent: int, marker: str = "") -> list[int]:
    """Living child processes of ``parent`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if (
                fields is not None
                and fields[0] != "Z"
                and int(fields[1]) == parent
                and marker in command_line(int(entry.name))
            ):
                found.append(int(entry.name))
    return found


def descendants(root: int) -> list[int]:
    """Every living process below ``root``."""
    found: list[int] = []
    frontier = [root]
    while frontier:
        below = [pid for parent in frontier for pid in children(parent)]
        found += below
        frontier = below
    return found


def processes(marker: str) -> list[int]:
    """Living processes whose command line contains ``marker``."""
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and alive(int(e.name)) and marker in command_line(int(e.name))
    ]
