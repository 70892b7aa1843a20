"""One run against a baseline's recorded runs: the t prediction test, its interval, and why
the unit is the run (pooled samples false-alarm under run-to-run noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from infersuite.stats.compare import compute_run_effect, compute_run_noise


def _runs(rng: np.random.Generator, k: int, between: float = 0.10) -> np.ndarray:
    """k run medians of unchanged code: each run lands at its own level (the host's state
    that run), 10% scatter in log."""
    return 0.02 * np.exp(rng.normal(0.0, between, k))


def test_effect_and_p_values_by_hand() -> None:
    medians = [1.0, 1.04, 0.98, 1.02]
    effect = compute_run_effect(medians, 1.10)
    logs = np.log(medians)
    scale = np.std(logs, ddof=1) * math.sqrt(1 + 1 / 4)
    shift = math.log(1.10) - logs.mean()
    assert effect.ratio == pytest.approx(math.exp(shift))
    assert effect.p_slower == pytest.approx(stats.t.sf(shift / scale, 3))
    assert effect.p_faster == pytest.approx(stats.t.cdf(shift / scale, 3))
    half = stats.t.ppf(0.995, 3) * scale
    assert effect.ratio_lower == pytest.approx(math.exp(shift - half))
    assert effect.ratio_upper == pytest.approx(math.exp(shift + half))
    assert effect.n == 4


def test_unchanged_code_is_flagged_at_the_stated_rate() -> None:
    """4000 A/A draws with k = 5 runs: p(slower) < 0.01 about 1% of the time (binomial 99.9%
    range 0.56%-1.6%), and the 99% interval covers no change about 99% of the time."""
    rng = np.random.default_rng(1)
    flagged = covered = 0
    for _ in range(4000):
        runs = _runs(rng, 6)
        effect = compute_run_effect(runs[:5], float(runs[5]))
        flagged += effect.p_slower < 0.01
        covered += effect.ratio_lower < 1.0 < effect.ratio_upper
    assert 0.0056 <= flagged / 4000 <= 0.016
    assert 0.984 <= covered / 4000 <= 0.995


def test_pooled_samples_false_alarm_where_the_run_test_does_not() -> None:
    """The planted fault: testing one run's samples against another's (Mann-Whitney on
    pooled samples, the old rule) calls most A/A pairs different when runs differ by
    their own level; the run-level test keeps to its 1%."""
    rng = np.random.default_rng(2)
    pooled = run_level = 0
    for _ in range(200):
        levels = _runs(rng, 6)
        samples = [level * np.exp(rng.normal(0.0, 0.02, 60)) for level in levels]
        medians = [float(np.median(s)) for s in samples]
        pooled += stats.mannwhitneyu(samples[5], samples[4], alternative="greater").pvalue < 0.01
        run_level += compute_run_effect(medians[:5], medians[5]).p_slower < 0.01
    assert pooled >= 60  # about a third of the pairs
    assert run_level <= 8


def test_power_grows_with_the_slowdown_and_shrinks_with_noise() -> None:
    rng = np.random.default_rng(3)

    def rate(slowdown: float, between: float) -> float:
        hits = 0
        for _ in range(400):
            runs = _runs(rng, 11, between)
            hits += compute_run_effect(runs[:10], float(runs[10]) * (1 + slowdown)).p_slower < 0.01
        return hits / 400

    assert rate(0.10, 0.01) > 0.99  # 10% slower on a quiet host (1% scatter)
    assert rate(0.10, 0.10) < 0.2  # the same 10% inside 10% run-to-run scatter


def test_identical_recorded_medians_put_any_shift_at_the_extreme() -> None:
    slower = compute_run_effect([0.5, 0.5, 0.5], 0.6)
    assert (slower.p_slower, slower.p_faster) == (0.0, 1.0)
    assert slower.ratio == slower.ratio_lower == slower.ratio_upper == pytest.approx(1.2)
    same = compute_run_effect([0.5, 0.5], 0.5)
    assert (same.p_slower, same.p_faster, same.ratio) == (1.0, 1.0, 1.0)


def test_too_few_runs_and_bad_input_raise_with_the_remedy() -> None:
    with pytest.raises(ValueError, match="needs >= 2 recorded runs, got 1; save the baseline"):
        compute_run_effect([0.02], 0.03)
    with pytest.raises(ValueError, match="durations > 0"):
        compute_run_effect([1.0, 0.0], 1.2)
    with pytest.raises(ValueError, match="confidence"):
        compute_run_effect([1.0, 1.1], 1.2, confidence=1.0)


def test_run_noise_is_the_log_standard_deviation() -> None:
    assert compute_run_noise([1.0, math.e]) == pytest.approx(math.sqrt(0.5))
    assert math.isnan(compute_run_noise([1.0]))
