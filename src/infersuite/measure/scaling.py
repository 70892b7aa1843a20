"""Growth exponents of a measured series: least-squares slope of log(time) on log(size)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def compute_loglog_slope(sizes: Sequence[float], times_s: Sequence[float]) -> float | None:
    """Slope b of log(t) = a + b·log(n) (time ∝ n^b); None with fewer than 2 distinct sizes."""
    pairs = [(math.log(n), math.log(t))
             for n, t in zip(sizes, times_s, strict=True) if n > 0 and t > 0]
    if len({x for x, _ in pairs}) < 2:
        return None
    mean_x = sum(x for x, _ in pairs) / len(pairs)
    mean_y = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mean_x) ** 2 for x, _ in pairs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in pairs)
    return sxy / sxx
