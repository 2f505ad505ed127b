"""Student-t confidence intervals of a mean over seeds (the thesis reports 95% intervals).

The 95% interval of a mean over n seeds is ``mean +- t(0.975, n-1) * s / sqrt(n)`` with
``s`` the sample standard deviation (n-1 in the denominator); the t quantile is scipy's. A
single seed has no interval: its bounds are NaN and the tables print ``n=1``.
"""

from __future__ import annotations

import math
from typing import Iterable

from scipy import stats

CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The t with P(|T| <= t) = confidence for Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """``(mean, lo, hi, n)``; lo/hi are NaN for fewer than two values, all NaN for none."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = sum(xs) / n
    if n == 1:
        return mean, math.nan, math.nan, 1
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1, confidence) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n
