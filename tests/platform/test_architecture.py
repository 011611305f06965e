"""The boundaries of the tree hold: import-linter's contracts (pyproject.toml) are all kept, and SQL is
written in core only (issue 21, item 3): activities and workflows open transactions and call a
domain's store, and never build a query or name a table."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.source import parse

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# What activities and workflows may take from SQLAlchemy: engines, connections and its errors.
_ALLOWED_SQLALCHEMY = {"sqlalchemy.ext.asyncio", "sqlalchemy.exc"}


def test_activities_and_workflows_write_no_sql() -> None:
    offending = []
    for folder in ("activities", "workflows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(parse(path)):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    sql = name.split(".")[0] == "sqlalchemy" and name not in _ALLOWED_SQLALCHEMY
                    if sql or name.endswith(".tables"):
                        offending.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offending == [], "move the query into core/<domain>/store.py"
