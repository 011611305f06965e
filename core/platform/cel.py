"""CEL (Common Expression Language), evaluated by cel-python: the one expression language of admin-authored
conditions (rule conditions, step branches, approval policies). Never eval or exec. Every expression is
bounded when saved (length, nesting, no comprehension inside another) and compiled once.
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


MAX_NESTING = 12  # brackets of any kind inside one another
MAX_COMPREHENSION_NESTING = 1  # .all / .exists / .map … inside another one is refused
_MACROS = ("all", "exists", "exists_one", "map", "filter")
_QUOTES = ('"""', "'''", '"', "'")


def _skip_string(expression: str, start: int) -> int:
    """The index after the string literal that starts at ``start``."""
    quote = next(q for q in _QUOTES if expression.startswith(q, start))
    i = start + len(quote)
    while i < len(expression):
        if expression[i] == "\\":
            i += 2
            continue
        if expression.startswith(quote, i):
            return i + len(quote)
        i += 1
    return len(expression)


def check_cost(expression: str) -> None:
    """Refuse, at save, what could take unbounded stack or time to evaluate: deep nesting, and
    comprehensions inside comprehensions (their cost grows with the square of a list's length).
    Lexical, skipping string literals; CEL has no other way to nest."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    stack: list[bool] = []  # per open bracket: does it open a comprehension's arguments?
    i = 0
    while i < len(expression):
        char = expression[i]
        if char in "\"'":
            i = _skip_string(expression, i)
            continue
        if char in "([{":
            before = expression[:i].rstrip()
            stack.append(char == "(" and any(before.endswith("." + name) for name in _MACROS))
            if len(stack) > MAX_NESTING:
                raise ConditionError(f"expression is nested deeper than {MAX_NESTING} brackets")
            if sum(stack) > MAX_COMPREHENSION_NESTING:
                raise ConditionError(
                    "expression nests a comprehension (all, exists, exists_one, map, filter) inside another; "
                    "its cost would grow with the square of a list's length"
                )
        elif char in ")]}" and stack:
            stack.pop()
        i += 1


@lru_cache(maxsize=512)
def compile_condition(expression: str) -> Any:
    """Check the cost, then parse and plan an expression once; raises ConditionError with the reason."""
    check_cost(expression)
    try:
        return _ENV.program(_ENV.compile(expression))
    except celpy.CELParseError as exc:
        raise ConditionError(f"expression does not parse: {exc}") from exc
    except RecursionError as exc:
        raise ConditionError("expression is nested too deeply to evaluate") from exc
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
    except RecursionError as exc:
        raise ConditionError("condition is nested too deeply to evaluate") from exc
    except Exception as exc:  # an evaluation error of any kind skips the rule, never the event
        raise ConditionError(f"condition could not be evaluated: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise ConditionError(f"condition could not be evaluated: {result.args[0] if result.args else result}")
    if not isinstance(result, celtypes.BoolType):
        raise ConditionError(f"condition must be true or false, not {type(result).__name__}")
    return bool(result)
