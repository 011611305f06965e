"""Helpers every part of the benchmark shares."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(http: httpx.AsyncClient, children: list[asyncio.subprocess.Process]) -> None:
    for _ in range(300):
        if any(child.returncode is not None for child in children):
            raise SystemExit("a benchmark process exited during start-up")
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the API did not come up")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc); 0 if it is gone."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_processes(marker: str) -> list[int]:
    """Processes whose command line contains ``marker``, and their children (Postgres backends)."""
    roots: set[int] = set()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = _stat(pid)
        if fields is not None:
            parents[pid] = int(fields[1])
        if marker in command:
            roots.add(pid)
    return sorted(roots | {pid for pid, parent in parents.items() if parent in roots})


class CpuMeter:
    """CPU seconds used by named groups of processes between ``start()`` and ``stop()``, summed over
    several measured stretches."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.used: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        now = self._now()
        for name in self.groups:
            self.used[name] += now[name] - self._before[name]
