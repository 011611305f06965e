"""Rule conditions evaluated off the worker's event loop, in a child process with a time and size budget.

A condition is admin-authored CEL, checked for cost when saved (core/automation/conditions.py); what it
runs over is data (an entity's fields can hold a 60k-item list, a string a regex backtracks on). So
evaluation happens in a child process: each condition gets ``timeout_seconds``; one that takes longer
has its child killed (and replaced), and its rule is skipped with the reason, while the event's other
rules still run. Variables larger than ``max_input_bytes`` are not sent at all.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from core.automation.conditions import ConditionError, evaluate

logger = logging.getLogger("trellis.conditions")
Check = tuple[str, dict[str, Any]]  # (expression, variables)
Outcome = bool | ConditionError


READY = "ready"


def _serve(connection: Connection) -> None:
    """The child: evaluate each expression as it arrives, answer one result per expression."""
    evaluate("true", {})  # warm the parser before saying ready, so no budget pays for it
    connection.send(READY)
    while True:
        try:
            checks: list[Check] = connection.recv()
        except EOFError:
            return
        for expression, variables in checks:
            try:
                connection.send((True, evaluate(expression, variables)))
            except ConditionError as exc:
                connection.send((False, str(exc)))
            except Exception as exc:  # anything else is a failed evaluation too, never a dead child
                connection.send((False, f"condition could not be evaluated: {type(exc).__name__}: {exc}"))


class ConditionEvaluator:
    """One child process per evaluator (built in the worker's composition root), used one batch at a time."""

    def __init__(self, timeout_seconds: float = 1.0, max_input_bytes: int = 1024 * 1024) -> None:
        self._timeout = timeout_seconds
        self._max_input = max_input_bytes
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with running threads
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()

    def _spawn(self) -> Connection:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child,), name="trellis-conditions", daemon=True)
        process.start()
        child.close()
        if not parent.poll(60) or parent.recv() != READY:
            process.kill()
            raise RuntimeError("the condition evaluator process did not start")
        self._process, self._connection = process, parent
        return parent

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    async def start(self) -> None:
        """Start the child ahead of the first event (starting it costs a Python start-up)."""
        async with self._lock:
            if self._connection is None:
                await asyncio.to_thread(self._spawn)

    def close(self) -> None:
        self._kill()

    async def evaluate_all(self, checks: list[Check]) -> list[Outcome]:
        """Each condition's truth, or the ConditionError that skips its rule."""
        outcomes: list[Outcome | None] = [None] * len(checks)
        pending: list[int] = []
        for index, (_, variables) in enumerate(checks):
            size = len(pickle.dumps(variables))
            if size > self._max_input:
                outcomes[index] = ConditionError(
                    f"condition not evaluated: the event is {size} bytes, over the limit of {self._max_input} "
                    "(TRELLIS_CONDITION_MAX_INPUT_BYTES)"
                )
            else:
                pending.append(index)
        async with self._lock:
            while pending:
                connection = self._connection if self._connection is not None else await asyncio.to_thread(self._spawn)
                await asyncio.to_thread(connection.send, [checks[i] for i in pending])
                done = 0
                for index in pending:
                    try:
                        answered = await asyncio.to_thread(connection.poll, self._timeout)
                        ok, value = await asyncio.to_thread(connection.recv) if answered else (False, None)
                    except (EOFError, OSError):
                        answered, ok, value = False, False, "its evaluator process exited"
                    if not answered or value is None:
                        logger.warning("a condition ran past %ss; its evaluator process is replaced", self._timeout)
                        await asyncio.to_thread(self._kill)
                        outcomes[index] = ConditionError(
                            f"condition not evaluated: it ran longer than {self._timeout}s "
                            "(TRELLIS_CONDITION_TIMEOUT_SECONDS)"
                            if value is None
                            else f"condition not evaluated: {value}"
                        )
                        done += 1
                        break
                    outcomes[index] = bool(value) if ok else ConditionError(value)
                    done += 1
                pending = pending[done:]
        return [o if o is not None else ConditionError("condition not evaluated") for o in outcomes]
