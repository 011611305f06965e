"""The seed's *Priority Ranking Logic* (``calculate_workflow_priority``), as one pure function.

Snoozed: ``days_overdue`` (whole days from ``snooze_until`` to now, negative while it is ahead) at or
above -3 scores ``1000 + days_overdue`` (critical: it is about to come back), otherwise
``400 - |days_overdue|``. Otherwise the base of the type, plus ``revenue_impact_tier x 5``, plus
``churn_risk_score x 5`` for risk and ``floor(usage_score / 10)`` for opportunity, the signals read
from the item's entity's fields (values that are not numbers count as 0; each is held to its range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

BASE = {"risk": 900, "opportunity": 800, "strategic": 700, "renewal": 600, "custom": 500}
CRITICAL_WITHIN_DAYS = 3
Label = Literal["Critical", "High", "Medium", "Low"]


@dataclass(frozen=True)
class Signals:
    """The entity fields the score reads (their names are the entity's field names)."""

    revenue_impact_tier: float = 0  # 0-5
    churn_risk_score: float = 0  # 0-10
    usage_score: float = 0  # 0-100

    @classmethod
    def of(cls, fields: dict[str, Any]) -> Signals:
        return cls(
            revenue_impact_tier=number(fields.get("revenue_impact_tier"), 0, 5),
            churn_risk_score=number(fields.get("churn_risk_score"), 0, 10),
            usage_score=number(fields.get("usage_score"), 0, 100),
        )


SIGNAL_FIELDS = frozenset(f.name for f in fields(Signals))


def number(value: Any, low: float, high: float) -> float:
    """A stored value as a signal: numbers only (never parsed from text), clamped to its range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return min(max(float(value), low), high)


def days_overdue(snooze_until: datetime, now: datetime) -> int:
    return math.floor((now - snooze_until) / timedelta(days=1))


def priority_score(
    workflow_type: str, *, snooze_until: datetime | None, now: datetime, signals: Signals, snoozed: bool
) -> int:
    if snoozed and snooze_until is not None:
        overdue = days_overdue(snooze_until, now)
        return 1000 + overdue if overdue >= -CRITICAL_WITHIN_DAYS else 400 - abs(overdue)
    score = BASE.get(workflow_type, BASE["custom"]) + int(signals.revenue_impact_tier * 5)
    if workflow_type == "risk":
        score += int(signals.churn_risk_score * 5)
    elif workflow_type == "opportunity":
        score += math.floor(signals.usage_score / 10)
    return score


# Each label's score range [low, high): the one place the thresholds live.
LABEL_RANGES: dict[str, tuple[int, int]] = {
    "Critical": (900, 1_000_000),
    "High": (700, 900),
    "Medium": (500, 700),
    "Low": (-1_000_000, 500),
}


def priority_label(score: int) -> Label:
    for label, (low, high) in LABEL_RANGES.items():
        if low <= score < high:
            return label  # type: ignore[return-value]
    return "Critical" if score >= LABEL_RANGES["Critical"][0] else "Low"


def opportunity_score(fields: dict[str, Any]) -> int:
    """The seed's ``calculateOpportunityScore`` (0-10) over an entity's fields."""
    score = 0
    if number(fields.get("utilization_pct"), 0, 10_000) >= 100:
        score += 3
    if number(fields.get("yoy_growth_pct"), -1e6, 1e6) > 50:
        score += 2
    percentile = fields.get("market_price_percentile")
    if number(percentile, 0, 100) <= 25 and isinstance(percentile, int | float) and not isinstance(percentile, bool):
        score += 2
    if number(fields.get("adoption_rate_pct"), 0, 100) > 80:
        score += 2
    if number(fields.get("revenue_impact_tier"), 0, 5) >= 4:
        score += 1
    return min(score, 10)


def risk_score(fields: dict[str, Any]) -> int:
    """The seed's ``calculateRiskScore`` (0-10): churn risk, plus weak relationships, declining usage
    (below -10% last month) and a high revenue tier at risk."""
    score = number(fields.get("churn_risk_score"), 0, 10)
    if fields.get("relationship_strength") == "weak":
        score += 2
    if number(fields.get("usage_change_last_month_pct"), -100, 1e6) < -10:
        score += 2
    if number(fields.get("revenue_impact_tier"), 0, 5) >= 4 and score > 0:
        score += 1
    return int(min(score, 10))
