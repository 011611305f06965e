"""Errors go through the catalogue (core/platform/errors.py) only, so a refusal's HTTP answer and its
retryability are stated once: no module builds an ApplicationError or lists non-retryable types by
hand, and every error type recorded in a committed history is catalogued (issue 21, item 5)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.platform import errors
from tests.support.source import parse

ROOT = Path(__file__).resolve().parents[2]
CODE = [ROOT / d for d in ("core", "api", "workflows", "activities")] + [ROOT / "worker.py"]
CATALOGUE_MODULE = ROOT / "core" / "platform" / "errors.py"


def _modules() -> Iterator[Path]:
    for place in CODE:
        yield from ([place] if place.is_file() else sorted(place.rglob("*.py")))


def _calls(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called == name:
                yield node


def test_no_module_builds_an_application_error_by_hand() -> None:
    hand_built = []
    for path in _modules():
        if path == CATALOGUE_MODULE:
            continue
        tree = parse(path)
        hand_built += [f"{path.relative_to(ROOT)}:{call.lineno}" for call in _calls(tree, "ApplicationError")]
    assert hand_built == [], "raise through the catalogue (errors.KIND.error(...)) instead"


def test_no_retry_policy_names_non_retryable_types_by_hand() -> None:
    by_hand = []
    for path in _modules():
        if path == CATALOGUE_MODULE:
            continue
        tree = parse(path)
        for call in _calls(tree, "RetryPolicy"):
            if any(k.arg == "non_retryable_error_types" for k in call.keywords):
                by_hand.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert by_hand == [], "use errors.retry_policy(...), which derives them from the catalogue"


def test_non_retryable_types_are_the_catalogue_kinds_that_are_not_retryable() -> None:
    assert set(errors.NON_RETRYABLE_TYPES) == {k.type for k in errors.CATALOGUE.values() if not k.retryable}
    assert errors.WEBHOOK_FAILED.type not in errors.NON_RETRYABLE_TYPES
    assert errors.ACTION_INVALID.type in errors.NON_RETRYABLE_TYPES
    policy = errors.retry_policy(initial=timedelta(seconds=1), maximum=timedelta(seconds=2))
    assert list(policy.non_retryable_error_types or []) == list(errors.NON_RETRYABLE_TYPES)


def _failure_types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        info = node.get("applicationFailureInfo")
        if isinstance(info, dict) and info.get("type"):
            yield info["type"]
        for value in node.values():
            yield from _failure_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _failure_types(value)


def test_every_error_type_in_a_committed_history_is_catalogued() -> None:
    histories = sorted((ROOT / "tests" / "replay" / "histories").glob("*.json"))
    assert histories, "the committed histories moved"
    found = {t for path in histories for t in _failure_types(json.loads(path.read_text()))}
    assert found, "the histories record failures; the walk found none"
    assert found <= set(errors.CATALOGUE), found - set(errors.CATALOGUE)


def test_every_kind_named_in_code_is_catalogued() -> None:
    # errors.X.type / errors.X.error(...) for an X that is not an ErrorKind would only fail at run time.
    named = set()
    for path in _modules():
        for node in ast.walk(parse(path)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "errors"
                and node.attr.isupper()
            ):
                named.add(node.attr)
    kinds = {name for name, value in vars(errors).items() if isinstance(value, errors.ErrorKind)}
    assert named, "no module names a kind; the walk is broken"
    assert named - {"NON_RETRYABLE_TYPES", "CATALOGUE"} <= kinds
