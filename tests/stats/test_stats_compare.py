"""Regression gate: shift estimate, significance, effect threshold and history spread."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from infersuite.stats.compare import (
    compute_history_spread,
    compute_shift,
    compute_verdict,
)


def _lognormal(seed: int, n: int = 200, sigma: float = 0.1, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).lognormal(math.log(0.02), sigma, n)


def test_detects_10_percent_shift_in_nearly_all_seeds() -> None:
    statuses = [
        compute_verdict(_lognormal(2 * s), _lognormal(2 * s + 1, scale=1.10)).status
        for s in range(100)
    ]
    assert statuses.count("regression") >= 95


def test_no_false_alarm_on_identical_distributions() -> None:
    statuses = [
        compute_verdict(_lognormal(2 * s), _lognormal(2 * s + 1)).status for s in range(100)
    ]
    assert statuses.count("regression") == 0
    assert statuses.count("improvement") == 0


def test_significant_3_percent_shift_below_threshold_is_not_a_regression() -> None:
    base = _lognormal(5, n=1000, sigma=0.05)
    verdict = compute_verdict(base, base * 1.03)
    assert verdict.shift is not None
    assert verdict.shift.p_value_slower < 1e-6  # clearly significant ...
    assert verdict.shift.median_ratio == pytest.approx(1.03)
    assert verdict.status == "unchanged"  # ... but below the 5% effect threshold
    assert verdict.p99_ratio == pytest.approx(1.03)  # n >= 299 per side: p99 is gated


def test_history_spread_raises_effective_threshold() -> None:
    base = _lognormal(6, n=1000, sigma=0.05)
    assert compute_verdict(base, base * 1.06).status == "regression"
    verdict = compute_verdict(base, base * 1.06, threshold=0.05, history_spread=0.08)
    assert verdict.threshold == pytest.approx(0.08)
    assert verdict.status == "unchanged"
    assert "8.0%" in verdict.reason


def test_improvement_is_reported() -> None:
    base = _lognormal(7)
    verdict = compute_verdict(base, _lognormal(8, scale=0.85))
    assert verdict.status == "improvement"
    assert verdict.shift is not None
    assert verdict.shift.median_ratio < 0.95


def test_p99_must_also_exceed_threshold_when_gated() -> None:
    # Same median shift, but the current tail is no worse: with n >= 299 p99 blocks the verdict.
    base = _lognormal(9, n=400, sigma=0.05)
    current = np.minimum(base * 1.08, np.percentile(base, 99))
    verdict = compute_verdict(base, current)
    assert verdict.p99_ratio is not None
    assert verdict.p99_ratio - 1.0 <= 0.05
    assert verdict.status == "unchanged"


@pytest.mark.parametrize(("n_base", "n_cur"), [(0, 10), (1, 10), (10, 1)])
def test_too_few_samples_is_insufficient(n_base: int, n_cur: int) -> None:
    verdict = compute_verdict([0.01] * n_base, [0.011] * n_cur)
    assert verdict.status == "insufficient"
    assert verdict.shift is None
    assert f"baseline n={n_base}" in verdict.reason


def test_identical_constant_samples_are_unchanged_without_nan() -> None:
    verdict = compute_verdict([0.5] * 30, [0.5] * 30)
    assert verdict.status == "unchanged"
    assert verdict.shift is not None
    values = [
        verdict.shift.median_ratio,
        verdict.shift.ratio_lower,
        verdict.shift.ratio_upper,
        verdict.shift.p_value_slower,
        verdict.shift.p_value_two_sided,
    ]
    assert all(math.isfinite(v) for v in values)
    assert verdict.shift.median_ratio == 1.0


def test_constant_but_different_samples_are_a_regression() -> None:
    verdict = compute_verdict([1.0] * 50, [1.2] * 50)
    assert verdict.status == "regression"
    assert verdict.shift is not None
    assert verdict.shift.ratio_lower == pytest.approx(1.2)
    assert verdict.shift.ratio_upper == pytest.approx(1.2)


def test_hodges_lehmann_ratio_and_moses_interval_by_hand() -> None:
    rng = np.random.default_rng(11)
    base, cur = rng.lognormal(0.0, 0.2, 10), rng.lognormal(0.1, 0.2, 10)
    diffs = sorted(math.log(c) - math.log(b) for c, b in itertools.product(cur, base))
    shift = compute_shift(base, cur, confidence=0.95)
    assert shift.hodges_lehmann_ratio == pytest.approx(math.exp(float(np.median(diffs))))
    # Rank-sum tables, n = m = 10, two-sided 5%: U critical value 23, so C = 24 and the
    # interval is [D(24), D(100 - 24 + 1)] over the 100 ordered differences.
    assert shift.ratio_lower == pytest.approx(math.exp(diffs[23]))
    assert shift.ratio_upper == pytest.approx(math.exp(diffs[76]))
    assert shift.median_ratio == pytest.approx(float(np.median(cur) / np.median(base)))
    assert (shift.n_baseline, shift.n_current) == (10, 10)


def test_shift_interval_covers_true_ratio() -> None:
    shift = compute_shift(_lognormal(20, n=300), _lognormal(21, n=300, scale=1.07))
    assert shift.ratio_lower < 1.07 < shift.ratio_upper
    assert shift.p_value_two_sided < 0.01


def test_history_spread_estimator() -> None:
    """The one-sided 99% prediction bound of one more run's median, from k earlier runs."""
    from scipy import stats

    medians = [1.0, 1.04, 0.98, 1.02]
    logs = np.log(medians)
    bound = stats.t.ppf(0.99, 3) * np.std(logs, ddof=1) * math.sqrt(1 + 1 / 4)
    assert compute_history_spread(medians) == pytest.approx(math.expm1(bound))
    # two runs pay for knowing their scatter poorly: 39 standard deviations
    two = compute_history_spread([1.0, 1.01])
    assert two == pytest.approx(math.expm1(stats.t.ppf(0.99, 1) * np.std(np.log([1.0, 1.01]),
                                                                          ddof=1) * 1.5 ** 0.5))
    assert two > 0.3
    assert compute_history_spread([0.02]) == 0.0
    assert compute_history_spread([]) == 0.0
    assert compute_history_spread([0.02, 0.02, 0.02]) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": -0.1}, {"history_spread": math.nan}, {"alpha": 0.0}],
)
def test_invalid_gate_arguments_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="="):
        compute_verdict([1.0, 1.1], [1.0, 1.2], **kwargs)


def test_non_positive_samples_raise() -> None:
    with pytest.raises(ValueError, match="durations > 0"):
        compute_verdict([1.0, 0.0], [1.0, 1.2])
