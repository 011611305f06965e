"""Helpers every part of the benchmark shares."""

from __future__ import annotations

import asyncio
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
