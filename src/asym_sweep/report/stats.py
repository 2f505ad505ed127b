"""Student-t confidence intervals, without scipy.

The 95% interval of a mean over n seeds is ``mean +- t(0.975, n-1) * s / sqrt(n)``
with ``s`` the sample standard deviation (n-1 in the denominator). A single
seed has no interval: its bounds are NaN and the tables print ``n=1``.
"""

from __future__ import annotations

import math
from typing import Iterable

CONFIDENCE = 0.95


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-26.7.4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        total, term = 0.0, math.cos(theta)
        for j in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * j) / (2 * j + 1)
        return (2 / math.pi) * (theta + math.sin(theta) * total) if df > 1 else (2 / math.pi) * theta
    total, term = 0.0, 1.0
    for j in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * j - 1) / (2 * j)
    return math.sin(theta) * total


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The t with P(|T| <= t) = confidence, by bisection (monotone in t)."""
    lo, hi = 0.0, 1.0
    while t_two_sided_mass(hi, df) < confidence:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_mass(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


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
