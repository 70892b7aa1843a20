"""One run against a baseline's recorded runs: the effect, its interval and its test.

The samples of one run share that run's conditions (clock state, caches, neighbours on the
host), so their spread says little of how far the next run lands: on a shared 2-core host
a real model's median moved by tens of percent between runs of the same code while each
run's own samples stayed within a few percent. A test on pooled samples (Mann-Whitney)
then finds "significant" shifts in most runs of unchanged code. The unit of comparison is
therefore the run.

With k >= 2 recorded run medians m_1..m_k of a benchmark (logs: mean mu, standard
deviation s) and the current run's median c:

- effect: ``exp(log c - mu)``, the current median over the geometric mean of the runs';
- test: for unchanged code, log c is one more draw of the runs' distribution, so
  ``t = (log c - mu) / (s * sqrt(1 + 1/k))`` follows Student's t with k - 1 degrees of
  freedom (the prediction interval of a normal sample; ``scipy.stats.t``), one-sided p-values
  each way;
- interval: ``exp(log c - mu -/+ t_{k-1, 1-alpha/2} * s * sqrt(1 + 1/k))``: the shift this one
  run can resolve is as wide as the host's run-to-run noise, however many samples it took.

The t quantile pays for estimating the noise from few runs: for a two-sided 99% interval
it is 9.9 at k = 3, 4.6 at k = 5 and 3.25 at k = 10. The verdict, with the correction for many
benchmarks, is stats/paired.py's ``decide``, the same rule the A/B mode applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats as sps

from infersuite.stats.paired import Effect

MIN_RUNS = 2  # a t prediction needs a standard deviation: two runs at least


def compute_run_effect(run_medians: Sequence[float], current_median: float,
                       confidence: float = 0.99, noise_floor: float = 0.0) -> Effect:
    """The current run's median against k >= 2 recorded run medians (module docstring);
    `noise_floor` is a least value for s (a log standard deviation)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is outside (0, 1); use e.g. 0.99")
    logs = np.log(_positive_array(run_medians, "run_medians"))
    current = float(np.log(_positive_array([current_median], "current_median")[0]))
    k = logs.size
    if k < MIN_RUNS:
        raise ValueError(f"a run-to-run comparison needs >= {MIN_RUNS} recorded runs, got {k}; "
                         "save the baseline again (--infer-save-baseline appends a run)")
    shift = current - float(np.mean(logs))
    scale = max(float(np.std(logs, ddof=1)), noise_floor) * math.sqrt(1.0 + 1.0 / k)
    if scale == 0.0:
        # Identical recorded medians: no noise estimate; any shift is at the extreme.
        ratio = math.exp(shift)
        return Effect(k, ratio, ratio, ratio, 0.0 if shift > 0 else 1.0,
                      0.0 if shift < 0 else 1.0, confidence)
    t = shift / scale
    half = float(sps.t.ppf(0.5 + confidence / 2.0, k - 1)) * scale
    return Effect(k, math.exp(shift), math.exp(shift - half), math.exp(shift + half),
                  float(sps.t.sf(t, k - 1)), float(sps.t.cdf(t, k - 1)), confidence)


def compute_run_noise(run_medians: Sequence[float]) -> float:
    """The standard deviation of the runs' log medians (about their relative scatter);
    NaN with fewer than two runs."""
    logs = np.log(_positive_array(run_medians, "run_medians"))
    return float(np.std(logs, ddof=1)) if logs.size >= MIN_RUNS else math.nan


def _positive_array(samples: Iterable[float], name: str) -> np.ndarray:
    values = samples if isinstance(samples, np.ndarray) else list(samples)
    data = np.asarray(values, dtype=float).ravel()
    if data.size and not (np.all(np.isfinite(data)) and np.all(data > 0.0)):
        raise ValueError(
            f"{name}: samples must be finite durations > 0; drop failed or zero measurements"
        )
    return data
