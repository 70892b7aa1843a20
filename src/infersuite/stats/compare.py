"""Baseline-vs-current latency comparison: shift estimate, significance and the gate verdict.

Gate rule (docs/gate.md): a regression needs BOTH a significant one-sided
Mann-Whitney U test (p < alpha) AND a median ratio above 1 + effective threshold, where the
effective threshold is max(threshold, history spread); when both sides have enough samples
for a one-sided 95% upper bound of p99 (299), the p99 ratio must exceed it too. An
improvement is the mirror image (ratio below 1 - effective threshold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from infersuite.stats.percentiles import min_samples_for_percentile

# Above this many pairwise differences the Hodges-Lehmann interval is computed on
# quantile-thinned samples (see _thin): 4e6 float64 pairs is ~32 MB.
_MAX_PAIRS = 4_000_000
_THIN_TO = 2000


@dataclass(frozen=True)
class ShiftEstimate:
    """How much slower ``current`` is than ``baseline``, as a ratio (> 1 means slower).

    ``ratio_lower``/``ratio_upper`` bound exp(Hodges-Lehmann shift of log samples) with the
    distribution-free Moses interval (normal approximation to the U critical value); when
    the samples are too few for the requested confidence they span all pairwise ratios.
    """

    median_ratio: float
    ratio_lower: float
    ratio_upper: float
    p_value_slower: float
    p_value_two_sided: float
    n_baseline: int
    n_current: int
    hodges_lehmann_ratio: float = 1.0
    p_value_faster: float = 1.0
    confidence: float = 0.99


@dataclass(frozen=True)
class Verdict:
    """Outcome of the regression gate, with the numbers behind it."""

    status: str
    shift: ShiftEstimate | None
    p99_ratio: float | None
    threshold: float
    reason: str


def compute_shift(
    baseline: Iterable[float], current: Iterable[float], confidence: float = 0.99
) -> ShiftEstimate:
    """Median ratio, Hodges-Lehmann ratio interval and Mann-Whitney p-values (n >= 1 each)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is outside (0, 1); use e.g. 0.99")
    base = _positive_array(baseline, "baseline")
    cur = _positive_array(current, "current")
    if base.size == 0 or cur.size == 0:
        raise ValueError("compute_shift needs at least one sample on each side")
    median_ratio = float(np.median(cur) / np.median(base))
    if np.all(base == base[0]) and np.all(cur == base[0]):
        # Zero variance on identical values: U has no spread, so no test is possible or needed.
        return ShiftEstimate(1.0, 1.0, 1.0, 1.0, 1.0, base.size, cur.size, 1.0, 1.0, confidence)
    hl, low, high = _hodges_lehmann_log_shift(np.log(base), np.log(cur), confidence)
    p_slower = _mwu(cur, base, "greater")
    p_faster = _mwu(cur, base, "less")
    p_two = _mwu(cur, base, "two-sided")
    return ShiftEstimate(
        median_ratio,
        math.exp(low),
        math.exp(high),
        p_slower,
        p_two,
        int(base.size),
        int(cur.size),
        math.exp(hl),
        p_faster,
        confidence,
    )


def compute_verdict(
    baseline: Iterable[float],
    current: Iterable[float],
    threshold: float = 0.05,
    history_spread: float = 0.0,
    alpha: float = 0.01,
) -> Verdict:
    """Apply the gate rule; "insufficient" when either side has fewer than 2 samples."""
    _check_gate_args(threshold, history_spread, alpha)
    effective = max(threshold, history_spread)
    base = _positive_array(baseline, "baseline")
    cur = _positive_array(current, "current")
    if base.size < 2 or cur.size < 2:
        reason = (
            f"too few samples to compare (baseline n={base.size}, current n={cur.size}); "
            "need at least 2 per side, ideally >= 30; raise --infer-rounds"
        )
        return Verdict("insufficient", None, None, effective, reason)
    shift = compute_shift(base, cur, confidence=1.0 - alpha)
    p99_ratio = _p99_ratio(base, cur)
    change = shift.median_ratio - 1.0
    p99_change = None if p99_ratio is None else p99_ratio - 1.0
    slower = (
        shift.p_value_slower < alpha
        and change > effective
        and (p99_change is None or p99_change > effective)
    )
    faster = (
        shift.p_value_faster < alpha
        and change < -effective
        and (p99_change is None or p99_change < -effective)
    )
    status = "regression" if slower else "improvement" if faster else "unchanged"
    reason = _reason(status, shift, p99_ratio, effective, alpha)
    return Verdict(status, shift, p99_ratio, effective, reason)


def compute_history_spread(run_medians: Sequence[float], alpha: float = 0.01) -> float:
    """How far one more run's median may land above the baseline's runs by chance: the
    one-sided (1 - alpha) prediction bound for a new run's log median, given k >= 2 earlier
    runs' log medians with standard deviation s, as a relative change:

        exp(t_{k-1, 1-alpha} * s * sqrt(1 + 1/k)) - 1        (scipy.stats.t)

    Run medians scatter far more than one run's own samples suggest (a run shares its
    clock, cache and neighbours), and k runs estimate that scatter poorly, which the t
    quantile pays for: k=2 multiplies s by 39, k=5 by 4.1, k=10 by 3.0. Fewer than 2 runs
    -> 0.0 (the gate then treats the run-to-run noise as unknown).
    """
    medians = _positive_array(run_medians, "run_medians")
    if medians.size < 2:
        return 0.0
    logs = np.log(medians)
    spread = float(np.std(logs, ddof=1))
    k = medians.size
    return float(math.expm1(sps.t.ppf(1.0 - alpha, k - 1) * spread * math.sqrt(1.0 + 1.0 / k)))


def _hodges_lehmann_log_shift(
    log_base: np.ndarray, log_cur: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """HL estimate of log(current) - log(baseline) and its Moses confidence interval."""
    if log_base.size * log_cur.size > _MAX_PAIRS:
        log_base, log_cur = _thin(log_base), _thin(log_cur)
    diffs = np.sort(np.subtract.outer(log_cur, log_base).ravel())
    n, m = log_cur.size, log_base.size
    pairs = diffs.size
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    # Number of ordered differences cut from each tail (Hollander & Wolfe, large-sample C_alpha).
    cut = math.floor(pairs / 2.0 - z * math.sqrt(pairs * (n + m + 1) / 12.0))
    if cut < 1:
        return float(np.median(diffs)), float(diffs[0]), float(diffs[-1])
    return float(np.median(diffs)), float(diffs[cut - 1]), float(diffs[pairs - cut])


def _thin(values: np.ndarray) -> np.ndarray:
    """Deterministic stand-in for a large sample: its quantiles at _THIN_TO even steps.

    The interval is then computed as if n were _THIN_TO, i.e. wider (conservative).
    """
    if values.size <= _THIN_TO:
        return values
    return np.quantile(values, np.linspace(0.0, 1.0, _THIN_TO))


def _mwu(current: np.ndarray, baseline: np.ndarray, alternative: str) -> float:
    result = sps.mannwhitneyu(current, baseline, alternative=alternative)
    return float(result.pvalue)


def _p99_ratio(base: np.ndarray, cur: np.ndarray) -> float | None:
    needed = min_samples_for_percentile(99.0, 0.95, sided="upper")
    if base.size < needed or cur.size < needed:
        return None
    return float(np.percentile(cur, 99.0) / np.percentile(base, 99.0))


def _reason(
    status: str, shift: ShiftEstimate, p99_ratio: float | None, effective: float, alpha: float
) -> str:
    change_pct = (shift.median_ratio - 1.0) * 100.0
    conf_pct = f"{shift.confidence * 100:g}%"
    parts = [
        f"median {shift.median_ratio:.4f}x baseline ({change_pct:+.1f}%; HL ratio "
        f"{shift.hodges_lehmann_ratio:.4f}, {conf_pct} CI {shift.ratio_lower:.4f}-"
        f"{shift.ratio_upper:.4f})",
        f"p(slower)={shift.p_value_slower:.2g}, p(faster)={shift.p_value_faster:.2g} "
        f"vs alpha={alpha:g}",
    ]
    if p99_ratio is None:
        needed = min_samples_for_percentile(99.0, 0.95, sided="upper")
        parts.append(f"p99 not gated (needs >= {needed} samples per side)")
    else:
        parts.append(f"p99 ratio {p99_ratio:.4f}")
    parts.append(f"effective threshold {effective * 100:.1f}%")
    return f"{status}: " + "; ".join(parts)


def _check_gate_args(threshold: float, history_spread: float, alpha: float) -> None:
    if threshold < 0.0 or not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold!r}: use a relative change >= 0, e.g. 0.05")
    if history_spread < 0.0 or not math.isfinite(history_spread):
        raise ValueError(f"history_spread={history_spread!r}: must be a finite value >= 0")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} is outside (0, 1); use e.g. 0.01")


def _positive_array(samples: Iterable[float], name: str) -> np.ndarray:
    values = samples if isinstance(samples, np.ndarray) else list(samples)
    data = np.asarray(values, dtype=float).ravel()
    if data.size and not (np.all(np.isfinite(data)) and np.all(data > 0.0)):
        raise ValueError(
            f"{name}: samples must be finite durations > 0; drop failed or zero measurements"
        )
    return data
