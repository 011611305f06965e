"""Every workflow and activity is registered through its domain's bundle (workflows/bundles.py), once:
a new activity method or workflow class that no bundle lists fails here, not in production when the
first run schedules it (issue 21, item 4)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import cast

from temporalio.client import Client

from core.platform.database import make_engine
from core.platform.settings import Settings
from tests.support.source import parse
from worker import WORKFLOWS, condition_evaluator, domain_bundles, outbox_subscribers

ROOT = Path(__file__).resolve().parents[2]


def _declared(folder: str, decorator: str) -> set[str]:
    """Names given in ``@activity.defn(name=...)`` (or classes under ``@workflow.defn``)."""
    found: set[str] = set()
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if ast.unparse(target) != decorator:
                    continue
                names = [k.value for k in getattr(dec, "keywords", []) if k.arg == "name"]
                if decorator == "activity.defn":
                    assert names and isinstance(names[0], ast.Constant), f"{path}:{node.lineno} names no type"
                    found.add(str(names[0].value))
                else:
                    found.add(node.name)
    return found


def test_the_bundles_register_every_activity_and_workflow_once() -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    engine = make_engine(settings.database_url)  # never connects: the bundles only keep it
    evaluator = condition_evaluator(settings)
    try:
        bundles = domain_bundles(cast(Client, None), engine, settings, evaluator)
        names = Counter(getattr(fn, "__temporal_activity_definition").name for b in bundles for fn in b.activities)
        workflows = Counter(cls.__name__ for b in bundles for cls in b.workflows)
        assert [n for n, c in names.items() if c > 1] == []
        assert [n for n, c in workflows.items() if c > 1] == []
        assert set(names) == _declared("activities", "activity.defn")
        assert set(workflows) == _declared("workflows", "workflow.defn") == {c.__name__ for c in WORKFLOWS}
        assert sorted(b.name for b in bundles) == ["agents", "automation", "policy", "process", "steps", "work"]
        assert len(outbox_subscribers(bundles)) == 2  # the work queue's rescoring, external step events
    finally:
        evaluator.close()
