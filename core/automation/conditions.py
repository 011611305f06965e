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

from typing import Any

from core.platform.cel import (  # the one CEL of every admin-authored condition
    MAX_EXPRESSION_LENGTH,
    ConditionError,
    check_cost,
    compile_condition,
    evaluate,
)

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "ConditionError",
    "check_cost",
    "compile_condition",
    "condition_variables",
    "evaluate",
]


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
