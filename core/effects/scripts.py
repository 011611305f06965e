"""Registered scripts for the run_script action: the only code a rule can run, chosen by id.

A script is a pure function of the trigger entity (a snapshot) and the action's params, returning the
fields to set on that entity. Adding a script means adding it here, reviewed like any code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

Script = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


class ScriptError(ValueError):
    pass


def sum_line_items(entity: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """fields.line_items [{quantity, unit_price}] → {total}; params.tax_rate (e.g. 0.2) optional."""
    items = entity["fields"].get("line_items", [])
    if not isinstance(items, list):
        raise ScriptError("fields.line_items must be a list")
    try:
        subtotal = sum((Decimal(str(i.get("quantity", 1))) * Decimal(str(i["unit_price"])) for i in items), Decimal(0))
        tax = subtotal * Decimal(str(params.get("tax_rate", 0)))
    except (KeyError, InvalidOperation, TypeError, AttributeError) as exc:
        raise ScriptError(f"line items need numeric unit_price and quantity: {exc}") from exc
    return {"subtotal": float(subtotal), "tax": float(tax), "total": float(subtotal + tax)}


def days_until_due(entity: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """fields.due_date (YYYY-MM-DD) and params.today (YYYY-MM-DD, default: the event's date) → {days_until_due}."""
    try:
        due = date.fromisoformat(entity["fields"]["due_date"])
        today = date.fromisoformat(params.get("today") or entity["updated_ts"][:10])
    except (KeyError, ValueError, TypeError) as exc:
        raise ScriptError(f"needs fields.due_date as YYYY-MM-DD: {exc}") from exc
    return {"days_until_due": (due - today).days}


SCRIPTS: dict[str, Script] = {
    "sum_line_items": sum_line_items,
    "days_until_due": days_until_due,
}
