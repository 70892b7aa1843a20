"""Paired A/B comparison: per-round ratios, their test and interval, and one verdict per
benchmark after a correction for testing many benchmarks at once.

Each round runs variant A and variant B once, in random order, so both see the same noise
(a neighbour's burst, a clock change); the round's log ratio ``log(b / a)`` cancels what
the two shared. Over rounds:

- effect: the median per-round ratio, ``exp(median(log(b / a)))``;
- interval: the order-statistic interval of that median (stats/percentiles.py: exact and
  distribution-free at every n, where a bootstrap's coverage is only approximate; with too
  few rounds for a bound the interval is unbounded and more rounds are asked for);
- test: Wilcoxon's signed-rank test of the log ratios (``scipy.stats.wilcoxon``), one-sided
  each way ("B slower", "B faster");
- many benchmarks: Holm's step-down (family-wise error <= alpha; the default) or
  Benjamini-Hochberg (false discovery rate <= alpha; ``scipy.stats.false_discovery_control``).

Verdict with threshold T (the slowdown that must be caught) and adjusted p-values:

- regression: adjusted p(slower) < alpha and the effect is at least T/2 (closer to a T
  slowdown than to none); improvement is the mirror image;
- unchanged: the interval lies inside (1 - T, 1 + T): a T change is ruled out;
- inconclusive: neither; the host's noise left the interval wider than the question.

Sample size (``needs_more_rounds``): rounds are added until the interval is narrower than
T. The rule looks at the interval's width only, never at the effect or its p-value, so
stopping does not raise the test's error rate the way stopping at the first significant
look would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from infersuite.stats.percentiles import compute_percentile_interval

CORRECTIONS = ("holm", "bh")


@dataclass(frozen=True)
class Effect:
    """One side relative to the other, as a ratio (> 1: slower) with its interval and
    one-sided p-values: B vs A over paired rounds here, a run vs a baseline's recorded
    runs in stats/compare.py. ``n``: the rounds, or the baseline's runs."""

    n: int
    ratio: float
    ratio_lower: float
    ratio_upper: float
    p_slower: float
    p_faster: float
    confidence: float

    @property
    def width(self) -> float:
        return self.ratio_upper - self.ratio_lower

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: an unbounded interval end (too few rounds) is None."""
        return {k: None if isinstance(v, float) and math.isinf(v) else v
                for k, v in asdict(self).items()}


def compute_paired_effect(a: Sequence[float], b: Sequence[float],
                          confidence: float = 0.99) -> Effect:
    """The effect of B vs A from paired samples (round i of A with round i of B)."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} A vs {len(b)} B")
    if len(a) < 2:
        raise ValueError(f"a paired comparison needs >= 2 rounds, got {len(a)}")
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if (first <= 0).any() or (second <= 0).any():
        raise ValueError("paired samples must be positive times")
    logs = np.log(second) - np.log(first)
    median = float(np.median(logs))
    if np.all(logs == logs[0]):
        # Every round gave the same ratio: the signed-rank statistic is at its extreme,
        # p = 0.5**n in that direction (1 both ways for no change at all).
        extreme = 0.5 ** len(logs)
        ratio = math.exp(median)
        return Effect(len(logs), ratio, ratio, ratio,
                            extreme if median > 0 else 1.0, extreme if median < 0 else 1.0,
                            confidence)
    p_slower = float(stats.wilcoxon(logs, alternative="greater").pvalue)
    p_faster = float(stats.wilcoxon(logs, alternative="less").pvalue)
    interval = compute_percentile_interval(logs, 50.0, confidence)
    low = -math.inf if interval.lower is None else interval.lower
    high = math.inf if interval.upper is None else interval.upper
    return Effect(len(logs), math.exp(median), math.exp(low), math.exp(high), p_slower,
                        p_faster, confidence)


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """p-values adjusted for testing them all: Holm's step-down, or Benjamini-Hochberg."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}: expected one of {', '.join(CORRECTIONS)}")
    if not p_values:
        return []
    if method == "bh":
        from scipy.stats import false_discovery_control

        return [float(p) for p in false_discovery_control(list(p_values), method="bh")]
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def needs_more_rounds(effect: Effect, threshold: float) -> bool:
    """True while the interval is at least as wide as the threshold."""
    return effect.width >= threshold


@dataclass(frozen=True)
class Decision:
    status: str  # regression | improvement | unchanged | inconclusive
    reason: str


def decide(effect: Effect, p_slower_adjusted: float, p_faster_adjusted: float,
           threshold: float, alpha: float, compared: str = "B/A",
           unit: str = "rounds") -> Decision:
    """One benchmark's verdict (module docstring) from its effect and adjusted p-values;
    `compared` and `unit` name the ratio and what ``effect.n`` counts in the reason."""
    change = effect.ratio - 1.0
    where = (f"{compared} {effect.ratio:.4f} ({change * 100:+.1f}%), {effect.confidence:.0%} "
             f"CI [{effect.ratio_lower:.4f}, {effect.ratio_upper:.4f}], {effect.n} {unit}")
    if p_slower_adjusted < alpha and change >= threshold / 2:
        return Decision("regression", f"{where}; adjusted p(slower) "
                                           f"{p_slower_adjusted:.2g} < {alpha:g}")
    if p_faster_adjusted < alpha and -change >= threshold / 2:
        return Decision("improvement", f"{where}; adjusted p(faster) "
                                            f"{p_faster_adjusted:.2g} < {alpha:g}")
    if 1 - threshold < effect.ratio_lower and effect.ratio_upper < 1 + threshold:
        return Decision("unchanged", f"{where}: a {threshold:.0%} change is ruled out")
    return Decision("inconclusive", f"{where}: the interval is wider than the "
                                    f"{threshold:.0%} question; more {unit} or a quieter host")
