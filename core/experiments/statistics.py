"""The statistics experiments are judged by (decision 0022): textbook large-sample formulas, pure.

- Success rates: the difference p_b - p_a with a Wald interval, p ± z·sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b),
  and the two-proportion z-test with the pooled rate for the p-value (two-sided).
- Durations: the difference of means with Welch's standard error sqrt(s_a²/n_a + s_b²/n_b) and a normal
  interval (the minimum sample keeps n large enough for it), and the z-test on it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel

STANDARD = NormalDist()


class Difference(BaseModel):
    difference: float
    low: float
    high: float
    z: float
    p_value: float


def two_sided(z: float) -> float:
    return 2 * (1 - STANDARD.cdf(abs(z)))


def proportions(successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float = 0.05) -> Difference | None:
    """B's success rate minus A's; None without data on either side."""
    if n_a <= 0 or n_b <= 0:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    quantile = STANDARD.inv_cdf(1 - alpha / 2)
    spread = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (p_b - p_a) / pooled_se if pooled_se > 0 else 0.0
    return Difference(
        difference=p_b - p_a,
        low=p_b - p_a - quantile * spread,
        high=p_b - p_a + quantile * spread,
        z=z,
        p_value=two_sided(z) if pooled_se > 0 else 1.0,
    )


def means(
    mean_a: float, variance_a: float, n_a: int, mean_b: float, variance_b: float, n_b: int, *, alpha: float = 0.05
) -> Difference | None:
    """B's mean minus A's (variances are sample variances); None with fewer than two on a side."""
    if n_a < 2 or n_b < 2:
        return None
    quantile = STANDARD.inv_cdf(1 - alpha / 2)
    spread = math.sqrt(variance_a / n_a + variance_b / n_b)
    z = (mean_b - mean_a) / spread if spread > 0 else 0.0
    return Difference(
        difference=mean_b - mean_a,
        low=mean_b - mean_a - quantile * spread,
        high=mean_b - mean_a + quantile * spread,
        z=z,
        p_value=two_sided(z) if spread > 0 else 1.0,
    )
