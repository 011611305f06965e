"""Where the Trellis worker's CPU goes under load: py-spy samples the worker process during one extra
round at 20 concurrent (not counted in the figures: sampling costs CPU on a 2-core machine), and the
samples are sorted into the parts the benchmarks page names.

A sample is put in the first part whose pattern one of its frames matches, in the order of ``PARTS``
(so SQL inside an activity is SQL, and a payload converted inside a workflow activation is the
activation's). py-spy records only samples where the process is running Python (not idle waiting).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

# (part, a pattern of a frame's "function (file:line)")
PARTS: list[tuple[str, re.Pattern[str]]] = [
    ("state entry and other SQL: SQLAlchemy, psycopg", re.compile(r"sqlalchemy|psycopg")),
    ("outbox dispatch", re.compile(r"outbox")),
    (
        "workflow activations: sandbox, workflow code, payload conversion",
        re.compile(r"_workflow_instance|workflow_sandbox|/workflows/|_sandbox"),
    ),
    ("payload conversion outside workflows: activities, updates", re.compile(r"temporalio/converter|pydantic")),
    (
        "Temporal SDK core bridge: polling, completions",
        re.compile(r"temporalio/(bridge|worker/_activity|worker/_workflow\.py|worker/_worker)"),
    ),
    ("thread hand-offs: executor, futures, threading", re.compile(r"concurrent/futures|threading\.py|run_in_executor")),
    ("asyncio event loop", re.compile(r"asyncio/")),
]


# Which of the worker's jobs a sample belongs to: the first whose pattern one of its frames matches.
PATHS: list[tuple[str, re.Pattern[str]]] = [
    ("state entry activity (its SQL included)", re.compile(r"process/state_entry\.py")),
    ("outbox dispatcher (its SQL included)", re.compile(r"automation/dispatcher\.py")),
    ("workflow activations", re.compile(r"workflow_sandbox|_workflow_instance|temporalio/worker/_workflow\.py")),
    ("other activities", re.compile(r"temporalio/worker/_activity\.py")),
]

_OURS = re.compile(r"[(/](core|activities|workflows|api)/\S+\.py|\(/?worker\.py")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or (str(Path(__file__).resolve().parents[1] / ".venv/bin/py-spy"))
    return found if Path(found).exists() else None


class Profile:
    """py-spy recording a process until ``stop``; ``summary`` sorts its samples."""

    def __init__(self, pid: int, out: Path) -> None:
        self._pid = pid
        self._out = out
        self._process: asyncio.subprocess.Process | None = None
        self._log = out.with_suffix(".log")

    async def start(self) -> bool:
        binary = py_spy()
        if binary is None:
            return False
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                binary, "record", "-p", str(self._pid), "-r", "100", "-f", "raw", "-o", str(self._out),
                "--nonblocking", stdout=log, stderr=log,
            )  # fmt: skip
        await asyncio.sleep(1.0)  # attached before the round starts
        return self._process.returncode is None

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes what it recorded on SIGINT
        try:
            await asyncio.wait_for(self._process.wait(), timeout=30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    def summary(self) -> dict[str, Any]:
        if not self._out.exists():
            problem = self._log.read_text(errors="replace")[-500:] if self._log.exists() else "py-spy did not run"
            return {"available": False, "problem": problem.strip()}
        return summarise(self._out.read_text(errors="replace"))


def summarise(raw: str) -> dict[str, Any]:
    """Shares of the samples by part, and the functions most often on top of the stack (self time)."""
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        part = next((name for name, pattern in PARTS if any(pattern.search(f) for f in frames)), "other")
        parts[part] += n
        path = next((name for name, pattern in PATHS if any(pattern.search(f) for f in frames)), None)
        paths[path or "the SDK's bridge, thread pool and event loop outside these"] += n
        leaves[_short(frames[-1])] += n
        mine = [f for f in frames if _OURS.search(f) and "site-packages" not in f and "temporalio/" not in f]
        ours[_short(mine[-1]) if mine else "(no Trellis frame: the SDK's own threads and loop)"] += n
    if total == 0:
        return {"available": False, "problem": "no samples"}
    return {
        "available": True,
        "samples": total,
        "parts": {name: round(n / total, 3) for name, n in parts.most_common()},
        "paths": {name: round(n / total, 3) for name, n in paths.most_common()},
        "top_functions": {name: round(n / total, 3) for name, n in leaves.most_common(12)},
        # The innermost Trellis function of each sample: which of our code paths the time is spent under.
        "trellis_functions": {name: round(n / total, 3) for name, n in ours.most_common(12)},
    }


def _short(frame: str) -> str:
    """``function (path/to/file.py:line)`` as ``function (to/file.py)``."""
    matched = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if matched is None:
        return frame[:120]
    path = Path(matched[2])
    return f"{matched[1]} ({path.parent.name}/{path.name})"
