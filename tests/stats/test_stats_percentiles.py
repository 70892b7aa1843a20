"""Percentile values, order-statistic intervals and sample-size rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from infersuite.stats.percentiles import (
    compute_percentile_interval,
    compute_percentiles,
    compute_summary,
    min_samples_for_percentile,
)


def _linear_percentile(sorted_values: list[float], percentile: float) -> float:
    """Textbook linear interpolation between closest ranks (numpy's default definition)."""
    h = (len(sorted_values) - 1) * percentile / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _ranks_by_hand(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    tail = (1.0 - confidence) / 2.0
    lower = [k for k in range(1, n + 1) if sps.binom.cdf(k - 1, n, q) <= tail]
    upper = [s for s in range(1, n + 1) if sps.binom.sf(s - 1, n, q) <= tail]
    return (max(lower) if lower else None), (min(upper) if upper else None)


@pytest.mark.parametrize(("n", "percentile"), [(20, 50), (40, 50), (100, 90), (500, 99)])
def test_value_and_interval_match_independent_computation(n: int, percentile: float) -> None:
    data = np.random.default_rng(n).lognormal(0.0, 0.5, n)
    ordered = sorted(data.tolist())
    est = compute_percentile_interval(data, percentile, 0.95)
    k, s = _ranks_by_hand(n, percentile / 100.0, 0.95)
    assert est.value == pytest.approx(_linear_percentile(ordered, percentile))
    assert k is not None
    assert s is not None
    assert est.lower == ordered[k - 1]
    assert est.upper == ordered[s - 1]
    assert est.enough_samples
    assert est.note == ""
    ci = sps.quantile_test(data, q=est.value, p=percentile / 100.0).confidence_interval(0.95)
    assert (est.lower, est.upper) == pytest.approx((ci.low, ci.high))


def test_median_interval_textbook_ranks_for_n20() -> None:
    # Classic table: for n = 20 the 95% distribution-free median interval is [X(6), X(15)].
    data = np.arange(1.0, 21.0)
    est = compute_percentile_interval(data[::-1], 50, 0.95)
    assert (est.lower, est.upper) == (6.0, 15.0)
    assert est.value == pytest.approx(10.5)


@pytest.mark.parametrize("percentile", [50, 90])
def test_interval_coverage_of_true_quantile(percentile: float) -> None:
    rng = np.random.default_rng(12345)
    true_value = -math.log(1.0 - percentile / 100.0)  # Exponential(1) quantile
    trials, covered = 400, 0
    for _ in range(trials):
        est = compute_percentile_interval(rng.exponential(1.0, 100), percentile, 0.95)
        assert est.lower is not None
        assert est.upper is not None
        covered += est.lower <= true_value <= est.upper
    assert covered / trials >= 0.93


def test_p99_from_40_samples_is_flagged_with_needed_count() -> None:
    est = compute_percentile_interval(np.linspace(1.0, 2.0, 40), 99, 0.95)
    assert not est.enough_samples
    assert est.upper is None
    assert est.n == 40
    assert "368" in est.note
    assert "299" in est.note
    assert "p99 from 40 samples" in est.note


def test_min_samples_p99_upper_is_299() -> None:
    assert min_samples_for_percentile(99, 0.95, "upper") == 299


@pytest.mark.parametrize(
    ("percentile", "sided"), [(90, "upper"), (90, "two"), (50, "two"), (99, "two"), (80, "lower")]
)
def test_min_samples_consistent_with_binomial(percentile: float, sided: str) -> None:
    q = percentile / 100.0
    tail = 0.05 if sided != "two" else 0.025
    n = 1
    while True:
        upper_ok = q**n <= tail
        lower_ok = (1.0 - q) ** n <= tail
        ok = {"upper": upper_ok, "lower": lower_ok, "two": upper_ok and lower_ok}[sided]
        if ok:
            break
        n += 1
    assert min_samples_for_percentile(percentile, 0.95, sided) == n


@pytest.mark.parametrize("percentile", [50, 90, 99])
def test_enough_samples_flips_exactly_at_min_two_sided(percentile: float) -> None:
    needed = min_samples_for_percentile(percentile, 0.95, "two")
    at = compute_percentile_interval(np.arange(1.0, needed + 1.0), percentile)
    below = compute_percentile_interval(np.arange(1.0, float(needed)), percentile)
    assert at.enough_samples
    assert not below.enough_samples


def test_empty_and_single_sample() -> None:
    empty = compute_percentile_interval([], 50)
    assert empty.n == 0
    assert math.isnan(empty.value)
    assert (empty.lower, empty.upper, empty.enough_samples) == (None, None, False)
    assert "no samples" in empty.note
    one = compute_percentile_interval([0.25], 50)
    assert (one.value, one.lower, one.upper, one.enough_samples) == (0.25, None, None, False)
    # A single sample is already a 97.5% lower bound of p99: P(X(1) > p99) = 0.01.
    one_p99 = compute_percentile_interval([0.25], 99)
    assert (one_p99.lower, one_p99.upper, one_p99.enough_samples) == (0.25, None, False)
    assert compute_summary([0.25]).mean == 0.25


def test_constant_samples_have_zero_width_interval_and_zero_std() -> None:
    est = compute_percentile_interval([2.0] * 50, 90)
    assert (est.value, est.lower, est.upper, est.enough_samples) == (2.0, 2.0, 2.0, True)
    summary = compute_summary([2.0] * 50)
    assert summary.std == 0.0
    assert summary.mean == 2.0


def test_summary_matches_numpy_and_is_json_ready() -> None:
    data = np.random.default_rng(7).gamma(2.0, 0.01, 300)
    summary = compute_summary(data)
    assert summary.n == 300
    assert summary.mean == pytest.approx(float(np.mean(data)))
    assert summary.std == pytest.approx(float(np.std(data, ddof=1)))
    assert (summary.min, summary.max) == (float(data.min()), float(data.max()))
    assert sorted(summary.percentiles) == [50.0, 90.0, 95.0, 99.0]
    as_dict = summary.to_dict()
    assert as_dict["percentiles"]["p99"]["enough_samples"] is False  # 300 < 368
    json.dumps(as_dict, allow_nan=False)
    json.dumps(compute_summary([]).to_dict(), allow_nan=False)


def test_compute_percentiles_keys() -> None:
    result = compute_percentiles(np.arange(1.0, 101.0), percentiles=(50, 99.9))
    assert sorted(result) == [50.0, 99.9]
    assert result[50.0].value == pytest.approx(50.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compute_percentile_interval([1.0], 101), "outside"),
        (lambda: compute_percentile_interval([1.0], 50, confidence=1.5), "confidence"),
        (lambda: compute_percentile_interval([1.0, math.nan], 50), "NaN"),
        (lambda: min_samples_for_percentile(99, 0.95, "both"), "sided"),
        (lambda: min_samples_for_percentile(100), "p100"),
    ],
)
def test_invalid_arguments_raise_actionable_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
