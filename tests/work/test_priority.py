"""The seed's Priority Ranking Logic: every example score of its table, the boundaries, the labels, and
the signal interpreter's scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.work.priority import Signals, opportunity_score, priority_label, priority_score, risk_score

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("workflow_type", "fields", "score", "label"),
    [
        ("risk", {"revenue_impact_tier": 5, "churn_risk_score": 8}, 965, "Critical"),
        ("opportunity", {"revenue_impact_tier": 4, "usage_score": 95}, 829, "High"),
        ("strategic", {"revenue_impact_tier": 5}, 725, "High"),
        ("renewal", {"revenue_impact_tier": 3}, 615, "Medium"),
        ("custom", {}, 500, "Medium"),
    ],
)
def test_the_seeds_examples(workflow_type: str, fields: dict[str, object], score: int, label: str) -> None:
    computed = priority_score(workflow_type, snooze_until=None, now=NOW, signals=Signals.of(fields), snoozed=False)
    assert computed == score
    assert priority_label(computed) == label


@pytest.mark.parametrize(
    ("until", "score", "label"),
    [
        (NOW + timedelta(days=2), 998, "Critical"),
        (NOW + timedelta(days=10), 390, "Low"),
        (NOW + timedelta(days=3), 997, "Critical"),  # the boundary: 3 days away is critical
        (NOW + timedelta(days=4), 396, "Low"),
        (NOW - timedelta(days=1), 1001, "Critical"),  # overdue keeps rising
        (NOW, 1000, "Critical"),  # due
        (NOW + timedelta(days=3, seconds=1), 396, "Low"),  # a second more than 3 days is 4 days away
    ],
)
def test_snoozed_scores(until: datetime, score: int, label: str) -> None:
    signals = Signals.of({"revenue_impact_tier": 5, "churn_risk_score": 10})  # ignored while snoozed
    assert priority_score("risk", snooze_until=until, now=NOW, signals=signals, snoozed=True) == score
    assert priority_label(score) == label


def test_signals_are_numbers_only_and_bounded() -> None:
    # Text is never parsed into a number (data is not code), and each signal is held to its range.
    assert Signals.of({"revenue_impact_tier": "5", "churn_risk_score": True, "usage_score": 1e9}) == Signals(
        revenue_impact_tier=0, churn_risk_score=0, usage_score=100
    )
    assert (
        priority_score("risk", snooze_until=None, now=NOW, signals=Signals.of({"churn_risk_score": 99}), snoozed=False)
        == 950
    )


def test_interpreter_scores() -> None:
    strong = {
        "utilization_pct": 120,
        "yoy_growth_pct": 60,
        "market_price_percentile": 20,
        "adoption_rate_pct": 90,
        "revenue_impact_tier": 4,
    }
    assert opportunity_score(strong) == 10
    assert opportunity_score({}) == 0  # a missing percentile is not "underpriced"
    assert risk_score({"churn_risk_score": 4, "relationship_strength": "weak", "usage_change_last_month_pct": -20}) == 8
    assert risk_score({"churn_risk_score": 9, "relationship_strength": "weak", "revenue_impact_tier": 5}) == 10
    assert risk_score({}) == 0
