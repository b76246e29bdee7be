"""Small statistics shared by the scorecard's verdicts and the benchmarks: the 95% t interval of a mean.

Hand-written (a table of 30 quantiles) so that the package needs no SciPy for one number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# two-sided 95% Student t quantiles t(0.975, df) for df = 1..30; above 30 the normal's 1.96 is within 2%
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile(df: int) -> float:
    """t(0.975, df): the two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def interval(gaps: Sequence[float]) -> tuple[float, float]:
    """The 95% confidence interval of the mean of `gaps` (at least two): mean +- t * sd / sqrt(n)."""
    mean = statistics.fmean(gaps)
    half = t_quantile(len(gaps) - 1) * statistics.stdev(gaps) / math.sqrt(len(gaps))
    return mean - half, mean + half


__all__ = ["interval", "t_quantile"]
