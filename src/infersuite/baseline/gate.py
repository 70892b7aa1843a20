"""The cross-run regression gate: each benchmark's run against its baseline's recorded runs.

Rule (docs/gate.md). Per benchmark, the current run's median is compared with the medians
of the runs saved into the baseline (stats/compare.py: Student's t prediction from the
runs' scatter, an effect with its 99% interval and one-sided p-values). The scatter used is
never below the median scatter of the run's benchmarks: a benchmark whose few recorded runs
happened to land close together would otherwise be judged against a noise the host does
not have, and the first run in a busier hour would be an alarm. The p-values of all
benchmarks are adjusted together (Holm: the chance of any false alarm in the run <= alpha),
and stats/paired.py's ``decide`` gives the verdict, the same rule as the A/B mode:
regression when the adjusted p(slower) < alpha and the shift is at least T/2; unchanged when
the interval lies inside +-T; inconclusive otherwise (the host's run-to-run noise is larger
than the question). Against a baseline of fewer than 2 runs every verdict is inconclusive:
one run says nothing of how far the next lands.

Where both sides carry the in-run reference probe (measure/probe.py), the medians of the
samples divided by their round's probe are judged too, and the gate keeps the series whose
recorded runs scatter less: chosen from the baseline alone, before the current run is
looked at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from infersuite.stats.compare import MIN_RUNS, compute_run_effect, compute_run_noise
from infersuite.stats.paired import Effect, adjust_p_values, decide
from infersuite.stats.percentiles import compute_percentile

# Exit statuses of a gated run, the same for the cross-run gate, A/B mode and `infersuite
# compare --fail-on-regression`; pytest's own stay as they are (1: a test failed, which
# wins over both; 4: usage error).
EXIT_REGRESSION = 10
EXIT_INCONCLUSIVE = 11
ALPHA = 0.01
CORRECTION = "holm"


@dataclass(frozen=True)
class GateRow:
    key: str  # the benchmark's fullname
    name: str
    metric: str
    status: str  # regression | improvement | unchanged | inconclusive | new
    effect: Effect | None  # the current run vs the baseline's runs, on the gated series
    reason: str
    baseline_median: float | None  # the baseline's latest run, raw samples
    current_median: float | None
    gated_on: str = "raw"  # raw | normalized (samples divided by their round's probe)
    noise: dict[str, float] | None = None  # each series' run-to-run scatter (log sd)
    other_ratio: float | None = None  # the shift of the series not gated on
    p_slower_adjusted: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class GateResult:
    rows: tuple[GateRow, ...]
    threshold: float
    correction: str = CORRECTION
    noise_floors: Mapping[str, float] | None = None  # per series kind (compute_noise_floors)

    @property
    def regressions(self) -> list[GateRow]:
        return [r for r in self.rows if r.status == "regression"]

    @property
    def inconclusive(self) -> list[GateRow]:
        return [r for r in self.rows if r.status == "inconclusive"]


@dataclass(frozen=True)
class Series:
    """One way of reading a benchmark: the current run's median and the baseline's
    recorded per-run medians of the same quantity."""

    current_median: float
    run_medians: Sequence[float]


@dataclass(frozen=True)
class Probed:
    """A benchmark's reference-probe times on the current side (one per sample) and the
    baseline's per-run medians of the normalized samples."""

    current: Sequence[float]
    normalized_medians: Sequence[float]


def build_series(samples: Sequence[float], run_medians: Sequence[float],
                 probed: Probed | None) -> dict[str, Series]:
    """The raw series, and the normalized one where the current run has a probe per sample."""
    series = {"raw": Series(_median(samples), run_medians)}
    if probed is not None and len(probed.current) == len(samples):
        normalized = np.asarray(samples, dtype=np.float64) / np.asarray(probed.current)
        series["normalized"] = Series(_median(normalized.tolist()), probed.normalized_medians)
    return series


def _median(samples: Sequence[float]) -> float:
    median = compute_percentile(samples, 50)
    if median is None:
        raise ValueError("a gated benchmark needs at least one sample")
    return median


def choose_series(series: Mapping[str, Series]) -> tuple[str, dict[str, float]]:
    """The series whose recorded runs scatter less (raw unless normalized has as many runs
    and less scatter), and each judged series' scatter."""
    noise = {name: compute_run_noise(s.run_medians) for name, s in series.items()
             if len(s.run_medians) >= MIN_RUNS}
    raw, normalized = noise.get("raw"), noise.get("normalized")
    if (raw is not None and normalized is not None and normalized < raw
            and len(series["normalized"].run_medians) == len(series["raw"].run_medians)):
        return "normalized", noise
    return "raw", noise


@dataclass(frozen=True)
class Judged:
    """A benchmark read both ways, before the run-wide noise floor and the verdict."""

    row: GateRow  # "pending", or already final (inconclusive: too few baseline runs)
    series: Mapping[str, Series]


def judge_benchmark(key: str, name: str, metric: str, baseline: Sequence[float],
                    current: Sequence[float], run_medians: Sequence[float],
                    probed: Probed | None = None) -> Judged:
    """The benchmark's series and the one to gate on; inconclusive at once against a
    baseline of fewer than 2 runs."""
    series = build_series(current, run_medians, probed)
    base_median = compute_percentile(baseline, 50)
    cur_median = series["raw"].current_median
    if len(run_medians) < MIN_RUNS:
        runs = len(run_medians)
        ratio = cur_median / base_median if base_median else math.nan
        reason = (f"inconclusive: the baseline has {runs} recorded run{'' if runs == 1 else 's'}, "
                  f"so its run-to-run noise is unknown and a shift (here {ratio - 1:+.1%} "
                  "on the median), or its absence, may be that noise; save the baseline "
                  "again (--infer-save-baseline appends a run)")
        return Judged(GateRow(key, name, metric, "inconclusive", None, reason, base_median,
                              cur_median), series)
    gated_on, noise = choose_series(series)
    return Judged(GateRow(key, name, metric, "pending", None, "", base_median, cur_median,
                          gated_on, noise), series)


def compute_noise_floors(judged: Sequence[Judged]) -> dict[str, float]:
    """Per series kind, the median over the benchmarks of their runs' scatter: the host's
    typical run-to-run noise, which no benchmark's own estimate may undercut."""
    floors = {}
    for kind in ("raw", "normalized"):
        values = [j.row.noise[kind] for j in judged if j.row.noise and kind in j.row.noise]
        if values:
            floors[kind] = float(np.median(values))
    return floors


def measure_effect(judged: Judged, floors: Mapping[str, float]) -> GateRow:
    """The pending row's effect on its gated series, its noise floored at the run's."""
    row = judged.row
    if row.status != "pending":
        return row
    chosen = judged.series[row.gated_on]
    effect = compute_run_effect(chosen.run_medians, chosen.current_median, 1.0 - ALPHA,
                                floors.get(row.gated_on, 0.0))
    others = [s for n, s in judged.series.items()
              if n != row.gated_on and len(s.run_medians) >= MIN_RUNS]
    other_ratio = (compute_run_effect(others[0].run_medians, others[0].current_median).ratio
                   if others else None)
    return replace(row, effect=effect, other_ratio=other_ratio)


def decide_rows(rows: Sequence[GateRow], threshold: float, correction: str = CORRECTION,
                floors: Mapping[str, float] | None = None) -> list[GateRow]:
    """Adjust the pending rows' p-values together, then give each its verdict."""
    pending = [i for i, r in enumerate(rows) if r.status == "pending"]
    effects = [rows[i].effect for i in pending]
    slower = adjust_p_values([e.p_slower for e in effects if e], correction)
    faster = adjust_p_values([e.p_faster for e in effects if e], correction)
    out = list(rows)
    for index, p_slow, p_fast in zip(pending, slower, faster, strict=True):
        row = rows[index]
        assert row.effect is not None
        verdict = decide(row.effect, p_slow, p_fast, threshold, ALPHA,
                         compared=f"run/baseline ({row.gated_on})", unit="baseline runs")
        own = (row.noise or {}).get(row.gated_on, math.nan)
        floor = (floors or {}).get(row.gated_on, 0.0)
        noise = (f"run-to-run noise {own:.1%}" if own >= floor else
                 f"run-to-run noise {floor:.1%}, the median of the run's benchmarks "
                 f"(its own runs: {own:.1%})")
        out[index] = replace(row, status=verdict.status,
                             reason=f"{verdict.status}: {verdict.reason}; {noise}; "
                                    f"{correction} over {len(pending)} benchmarks",
                             p_slower_adjusted=p_slow, threshold=threshold)
    return out


def compute_gate(
    baseline: Mapping[str, Sequence[float]],
    current: Mapping[str, tuple[str, str, Sequence[float]]],
    run_medians: Mapping[str, Sequence[float]],
    threshold: float,
    probed: Mapping[str, Probed] | None = None,
) -> GateResult:
    """`current`: key -> (display name, metric, samples); keys absent from the baseline
    are "new" (not gated); keys in `probed` are judged raw and normalized."""
    judged = []
    for key, (name, metric, samples) in current.items():
        if key not in baseline:
            row = GateRow(key, name, metric, "new", None, "not in the baseline", None,
                          compute_percentile(samples, 50))
            judged.append(Judged(row, {}))
        else:
            judged.append(judge_benchmark(key, name, metric, baseline[key], samples,
                                          run_medians.get(key, ()), (probed or {}).get(key)))
    floors = compute_noise_floors(judged)
    rows = [measure_effect(j, floors) for j in judged]
    return GateResult(tuple(decide_rows(rows, threshold, floors=floors)), threshold,
                      noise_floors=floors)
