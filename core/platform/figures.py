"""The small arithmetic every domain's analytics shares: a percentage of a whole that may be empty, and
a figure from SQL (a Decimal, a float or NULL) rounded for an answer."""

from __future__ import annotations

from typing import Any


def percent(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole``, 2 decimals; None when there is no whole to speak of."""
    return round(100.0 * part / whole, 2) if whole else None


def rounded(value: Any, digits: int, *, per: float = 1.0) -> float | None:
    """``value / per`` rounded to ``digits``; None stays None (an aggregate over no rows)."""
    return None if value is None else round(float(value) / per, digits)
