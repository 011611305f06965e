"""Rule conditions in CEL (Common Expression Language): a safe, side-effect-free expression language,
evaluated by cel-python. Never eval or exec.

An expression sees:
  ``event``  {kind, field, old_value, new_value}
  ``old``    the entity before the change (null on create)
  ``new``    the entity after the change (``entity`` is the same)
  each entity is {id, entity_type, name, status, fields: {...}, version}

Examples: ``new.status == "Completed"``; ``new.fields.priority == "high"``;
``has(new.fields.assigned_to)``; ``old.status != new.status && new.status == "Accepted"``.
A missing field is an evaluation error, so test optional fields with ``has(...)``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

MAX_EXPRESSION_LENGTH = 2000
_ENV = celpy.Environment()


class ConditionError(ValueError):
    """The expression does not compile (at save) or did not yield a boolean (at run time)."""


@lru_cache(maxsize=2048)
def compile_condition(expression: str) -> Any:
    """Parse and plan an expression once; raises ConditionError with the parser's pointer."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return _ENV.program(_ENV.compile(expression))
    except celpy.CELParseError as exc:
        raise ConditionError(f"expression does not parse: {exc}") from exc
    except Exception as exc:  # cel-python raises assorted errors from its planner
        raise ConditionError(f"expression is not valid CEL: {exc}") from exc


def evaluate(expression: str, variables: dict[str, Any]) -> bool:
    """True/False; ConditionError when evaluation fails or yields something other than a boolean."""
    program = compile_condition(expression)
    activation = {name: celpy.json_to_cel(value) for name, value in variables.items()}
    try:
        result = program.evaluate(activation)
    except celpy.CELEvalError as exc:
        raise ConditionError(f"condition could not be evaluated: {exc.args[0] if exc.args else exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise ConditionError(f"condition could not be evaluated: {result.args[0] if result.args else result}")
    if not isinstance(result, celtypes.BoolType):
        raise ConditionError(f"condition must be true or false, not {type(result).__name__}")
    return bool(result)


def condition_variables(event: dict[str, Any]) -> dict[str, Any]:
    """The variables of an entity event (an f_entity_event row as JSON)."""
    new = event.get("new_entity") or {}
    return {
        "event": {
            "kind": event["event_kind"],
            "field": event.get("field_name"),
            "old_value": event.get("old_value"),
            "new_value": event.get("new_value"),
        },
        "old": event.get("old_entity"),
        "new": new,
        "entity": new,
    }
