"""Parsing the project's own source in tests that check its architecture.

CPython 3.11.7's AST constructor keeps its recursion counter in state shared by every thread, and the
3.11 traceback module parses source lines (to place its ^^^ markers) whenever a traceback is formatted.
With the test session's servers logging failures from other threads, ``ast.parse`` here can rarely
fail with the spurious "SystemError: AST constructor recursion depth mismatch" (CPython issue 106905,
fixed in 3.11.8). The parse of an unchanged file is repeated then; any other error stands."""

from __future__ import annotations

import ast
from pathlib import Path

ATTEMPTS = 3


def parse(path: Path) -> ast.Module:
    for attempt in range(ATTEMPTS):
        try:
            return ast.parse(path.read_text(), str(path))
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
