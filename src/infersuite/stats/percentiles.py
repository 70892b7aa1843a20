"""Sample percentiles with distribution-free (order-statistic) confidence intervals.

Percentiles here are ``p`` in [0, 100]; quantiles are ``q`` in [0, 1]. The interval for the
p-th percentile is ``[X(k), X(s)]`` over the sorted samples, with ``k`` and ``s`` chosen from
the Binomial(n, q) distribution so each tail misses with probability at most
``(1 - confidence) / 2`` (the same interval as ``scipy.stats.quantile_test``). A bound that
needs more samples than there are is ``None``, and the estimate says how many are needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as sps

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
_SIDES = ("two", "upper", "lower")


@dataclass(frozen=True)
class PercentileEstimate:
    """The p-th percentile of a sample and its order-statistic interval."""

    percentile: float
    value: float
    lower: float | None
    upper: float | None
    confidence: float
    n: int
    enough_samples: bool
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {key: _json_float(val) for key, val in asdict(self).items()}


@dataclass(frozen=True)
class LatencySummary:
    """Location, spread and percentiles of one latency sample (units of the input)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    percentiles: dict[float, PercentileEstimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: NaN becomes None, percentile keys become strings like ``"p99"``."""
        return {
            "n": self.n,
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "min": _json_float(self.min),
            "max": _json_float(self.max),
            "percentiles": {
                _percentile_label(p): est.to_dict() for p, est in self.percentiles.items()
            },
        }


def min_samples_for_percentile(
    percentile: float, confidence: float = 0.95, sided: str = "two"
) -> int:
    """Smallest n for which an order-statistic bound of the p-th percentile exists.

    ``sided="upper"``: a one-sided upper bound at ``confidence`` needs q**n <= 1 - confidence
    (p99 at 95% -> 299). ``"lower"``: (1-q)**n <= 1 - confidence. ``"two"``: both bounds of
    a two-sided interval, each tail at (1 - confidence) / 2 (p99 at 95% -> 368).
    """
    _check_confidence(confidence)
    if sided not in _SIDES:
        raise ValueError(f"sided={sided!r}: expected one of {', '.join(_SIDES)}")
    if not 0.0 < percentile < 100.0:
        raise ValueError(
            f"percentile={percentile!r}: no distribution-free bound exists for p0 or p100 "
            "(or outside [0, 100]); use a percentile strictly between 0 and 100"
        )
    q = percentile / 100.0
    if sided == "upper":
        return _min_n(q, 1.0 - confidence)
    if sided == "lower":
        return _min_n(1.0 - q, 1.0 - confidence)
    tail = (1.0 - confidence) / 2.0
    return max(_min_n(q, tail), _min_n(1.0 - q, tail))


def compute_percentile(samples: Iterable[float], percentile: float) -> float | None:
    """The p-th percentile by numpy's linear interpolation; None without samples.

    The one definition every table uses (reports, `infersuite compare`, the gate's medians).
    """
    _check_percentile(percentile)
    data = _as_sorted_array(samples)
    return float(np.percentile(data, percentile)) if data.size else None


def compute_percentile_interval(
    samples: Iterable[float], percentile: float, confidence: float = 0.95
) -> PercentileEstimate:
    """The p-th percentile (numpy linear interpolation) and its two-sided interval."""
    _check_percentile(percentile)
    _check_confidence(confidence)
    data = _as_sorted_array(samples)
    n = int(data.size)
    if n == 0:
        return PercentileEstimate(
            percentile,
            math.nan,
            None,
            None,
            confidence,
            0,
            False,
            f"{_percentile_label(percentile)}: no samples; run the measurement first",
        )
    value = float(np.percentile(data, percentile))  # compute_percentile's definition
    lower_index, upper_index = _order_statistic_indices(n, percentile / 100.0, confidence)
    lower = None if lower_index is None else float(data[lower_index - 1])
    upper = None if upper_index is None else float(data[upper_index - 1])
    enough = lower is not None and upper is not None
    note = "" if enough else _remedy(percentile, confidence, n)
    return PercentileEstimate(percentile, value, lower, upper, confidence, n, enough, note)


def compute_percentiles(
    samples: Iterable[float],
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    confidence: float = 0.95,
) -> dict[float, PercentileEstimate]:
    """``compute_percentile_interval`` for each percentile, keyed by percentile."""
    data = _as_sorted_array(samples)
    return {float(p): compute_percentile_interval(data, p, confidence) for p in percentiles}


def compute_summary(
    samples: Iterable[float],
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    confidence: float = 0.95,
) -> LatencySummary:
    """n, mean, std (ddof=1), min, max and percentiles; NaN where undefined (n=0; std n<2)."""
    data = _as_sorted_array(samples)
    n = int(data.size)
    ests = compute_percentiles(data, percentiles, confidence)
    if n == 0:
        return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, ests)
    if n == 1:
        only = float(data[0])
        return LatencySummary(1, only, math.nan, only, only, ests)
    if data[0] == data[-1]:
        # Zero variance: avoid floating residue from np.std on identical values.
        const = float(data[0])
        return LatencySummary(n, const, 0.0, const, const, ests)
    return LatencySummary(
        n,
        float(np.mean(data)),
        float(np.std(data, ddof=1)),
        float(data[0]),
        float(data[-1]),
        ests,
    )


def _order_statistic_indices(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks (k, s) with P(B <= k-1) <= tail and P(B >= s) <= tail, B ~ Bin(n, q)."""
    tail = (1.0 - confidence) / 2.0
    ranks = np.arange(1, n + 1)
    # P(X(k) > true quantile) = P(B <= k - 1): take the largest k that keeps it <= tail.
    lower_ok = sps.binom.cdf(ranks - 1, n, q) <= tail
    # P(X(s) < true quantile) = P(B >= s): take the smallest s that keeps it <= tail.
    upper_ok = sps.binom.sf(ranks - 1, n, q) <= tail
    lower = int(ranks[lower_ok][-1]) if lower_ok.any() else None
    upper = int(ranks[upper_ok][0]) if upper_ok.any() else None
    return lower, upper


def _remedy(percentile: float, confidence: float, n: int) -> str:
    label = _percentile_label(percentile)
    if not 0.0 < percentile < 100.0:
        return (
            f"{label} from {n} samples: the extreme order statistic has no distribution-free "
            "interval; report it as the observed extreme"
        )
    two = min_samples_for_percentile(percentile, confidence, "two")
    upper = min_samples_for_percentile(percentile, confidence, "upper")
    conf_pct = f"{confidence * 100:g}%"
    return (
        f"{label} from {n} samples: need >= {two} for a two-sided {conf_pct} interval "
        f"(>= {upper} for a one-sided upper bound); raise --infer-rounds"
    )


def _min_n(miss_probability_per_sample: float, tail: float) -> int:
    """Smallest n with base**n <= tail, guarding against float rounding at the boundary."""
    base = miss_probability_per_sample
    n = max(1, math.ceil(math.log(tail) / math.log(base)))
    while n > 1 and base ** (n - 1) <= tail:
        n -= 1
    while base**n > tail:
        n += 1
    return n


def _as_sorted_array(samples: Iterable[float]) -> np.ndarray:
    values = samples if isinstance(samples, np.ndarray) else list(samples)
    data = np.sort(np.asarray(values, dtype=float).ravel())
    if data.size and not np.all(np.isfinite(data)):
        raise ValueError("samples contain NaN or infinity; drop failed measurements first")
    return data


def _check_percentile(percentile: float) -> None:
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile={percentile!r} is outside [0, 100]; use e.g. 99 for p99")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is outside (0, 1); use e.g. 0.95")


def _percentile_label(percentile: float) -> str:
    return f"p{percentile:g}"


def _json_float(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
