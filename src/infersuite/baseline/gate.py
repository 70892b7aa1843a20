"""The cross-run regression gate: each benchmark's run against its baseline's recorded runs.

Rule (docs/gate.md). Per benchmark, the current run's median is compared with the medians
of the runs saved into the baseline (stats/compare.py: Student's t prediction from the
runs' scatter, an effect with its 99% interval and one-sided p-values). The scatter used is
never below the median scatter of the run's benchmarks: a benchmark whose few recorded runs
happened to land close together would otherwise be judged against a noise the host does
not have. The p-values of all benchmarks are adjusted together (Holm: the chance of any
false alarm in the run <= alpha), and stats/paired.py's ``decide`` gives the verdict, the
same rule as the A/B mode: regression when the adjusted p(slower) < alpha and the shift is
at least T/2; unchanged when the interval lies inside +-T; inconclusive otherwise. Against
a baseline of fewer than 2 runs every verdict is inconclusive.

Where both sides carry the in-run reference probe (measure/probe.py), the medians of the
samples divided by their round's probe are judged too; the gate keeps the series whose
recorded runs scatter less (chosen from the baseline alone), and a verdict must show in
the other series as well (confirm). The probe is also the host's witness: a shift while it
ran at HOST_MOVED times its usual, in this benchmark (host_guard) or across more than
BUSY_SHARE of the run (busy_run), is inconclusive, and baseline runs recorded on a busy host
are left out of the scatter (quiet_runs). None of these can turn a regression into a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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
# The probe's median or p90 this many times its usual (the median over the baseline's
# runs) means a busy host. On a shared 2-core host, in ten runs of the default set: the
# probe's p90 at most 2.3x its usual (over 1.5x in 0-6% of the benchmarks) in runs beside
# one other job, and 6x-15x (over 1.5x in 39-68% of them) in runs beside several. Not
# lower: the probe is not blind to the code that ran just before it. A planted slowdown (a
# busy spin after each step) moved it 1.3x-1.6x in a quiet hour.
HOST_MOVED = 2.0
BUSY_SHARE = 0.2  # a run with the probe moved in more than this share of benchmarks is busy


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
    other: Effect | None = None  # that series' effect, which must confirm a verdict
    p_slower_adjusted: float | None = None
    threshold: float | None = None
    # the reference probe's p50 and p90 this run over their median in the baseline's runs
    host: Mapping[str, float] | None = None
    # the verdict of the same benchmark re-measured in the same job (baseline/rerun.py)
    rerun: Mapping[str, object] | None = None


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
    """A benchmark's reference-probe times on the current side (one per sample), the
    baseline's per-run medians of the normalized samples and of the probe itself."""

    current: Sequence[float]
    normalized_medians: Sequence[float]
    # the baseline's per-run probe statistics: {"p50": [...], "p90": [...]}
    probe_runs: Mapping[str, Sequence[float]] = field(default_factory=dict)


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
    probed: Probed | None = None


def quiet_runs(run_medians: Sequence[float], probed: Probed | None
               ) -> tuple[Sequence[float], Probed | None]:
    """The baseline's runs without those recorded on a busy host (the probe's median or
    p90 at over HOST_MOVED times its median across the runs): the current run is judged
    only when quiet itself (host_guard, busy_run), so it is compared with quiet runs, and
    a busy run does not inflate the scatter. All runs where the probe statistics do not
    line up with them, or where fewer than MIN_RUNS would be left."""
    if probed is None:
        return run_medians, probed
    p50, p90 = probed.probe_runs.get("p50", ()), probed.probe_runs.get("p90", ())
    k = len(run_medians)
    if not (len(p50) == len(p90) == len(probed.normalized_medians) == k) or k < MIN_RUNS:
        return run_medians, probed
    usual50, usual90 = _median(p50), _median(p90)
    quiet = [i for i in range(k)
             if p50[i] <= HOST_MOVED * usual50 and p90[i] <= HOST_MOVED * usual90]
    if len(quiet) < MIN_RUNS or len(quiet) == k:
        return run_medians, probed
    return [run_medians[i] for i in quiet], replace(
        probed, normalized_medians=[probed.normalized_medians[i] for i in quiet],
        probe_runs={"p50": [p50[i] for i in quiet], "p90": [p90[i] for i in quiet]})


def judge_benchmark(key: str, name: str, metric: str, baseline: Sequence[float],
                    current: Sequence[float], run_medians: Sequence[float],
                    probed: Probed | None = None) -> Judged:
    """The benchmark's series and the one to gate on; inconclusive at once against a
    baseline of fewer than 2 runs."""
    run_medians, probed = quiet_runs(run_medians, probed)
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
                          gated_on, noise), series, probed)


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
    others = [(n, s) for n, s in judged.series.items()
              if n != row.gated_on and len(s.run_medians) >= MIN_RUNS]
    other = (compute_run_effect(others[0][1].run_medians, others[0][1].current_median,
                                1.0 - ALPHA, floors.get(others[0][0], 0.0))
             if others else None)
    return replace(row, effect=effect, other_ratio=other.ratio if other else None,
                   other=other, host=measure_host(judged.probed))


def measure_host(probed: Probed | None) -> dict[str, float] | None:
    """The probe's median and p90 in this run over their median across the baseline's runs
    (a robust centre: a baseline that itself holds a busy run does not move it)."""
    if probed is None or not probed.current:
        return None
    host = {}
    for name, quantile in (("p50", 50), ("p90", 90)):
        runs = probed.probe_runs.get(name, ())
        now = compute_percentile(probed.current, quantile)
        if len(runs) >= MIN_RUNS and now is not None:
            host[name] = now / _median(runs)
    return host or None


def host_guard(status: str, host: Mapping[str, float] | None) -> tuple[str, str]:
    """A regression (improvement) while the reference probe itself ran HOST_MOVED times
    slower (faster) than usual, at its median or its p90, is inconclusive: the host, not
    the code, may have moved. The probe does not run the code under test, so a slower code
    path leaves it alone. Returns (status, reason prefix)."""
    if not host or status not in ("regression", "improvement"):
        return status, ""
    slower = status == "regression"
    moved = {name: ratio for name, ratio in host.items()
             if (ratio > HOST_MOVED if slower else ratio < 1.0 / HOST_MOVED)}
    if not moved:
        return status, ""
    said = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in moved.items())
    return "inconclusive", (
        f"inconclusive: the host itself was {'slower' if slower else 'faster'} during this "
        f"benchmark (its reference probe's {said} its median over the baseline's runs), "
        "so the shift cannot be told from the host's; rerun on a quieter host, or compare "
        "with --infer-ab; as judged: ")


def confirm(status: str, row: GateRow, threshold: float) -> tuple[str, str]:
    """A regression (improvement) must show in the other series too, where there is one:
    slower (faster) with p < alpha by at least T/2. A slower code path slows the raw and
    the normalized series alike; a busy host moves them apart (the probe catches some of
    a burst, or more of it than the workload), so a shift in one series only is
    inconclusive. Returns (status, reason prefix)."""
    other = row.other
    if other is None or status not in ("regression", "improvement"):
        return status, ""
    slower = status == "regression"
    p = other.p_slower if slower else other.p_faster
    shift = other.ratio - 1.0 if slower else 1.0 - other.ratio
    if p < ALPHA and shift >= threshold / 2:
        return status, ""
    kind = "raw" if row.gated_on == "normalized" else "normalized"
    return "inconclusive", (
        f"inconclusive: the {kind} series does not confirm it ({other.ratio - 1:+.1%}, "
        f"p={p:.2g}), so the host, not the code, may have moved; as judged: ")


def busy_run(rows: Sequence[GateRow]) -> str:
    """Why the whole run was on a busy host (the probe at HOST_MOVED times its usual in
    more than BUSY_SHARE of the benchmarks that carry it), or "". A burst can slow a
    benchmark's calls and miss the probe before them; across a run it cannot hide."""
    carried = [r for r in rows if r.host]
    moved = [r for r in carried if max(r.host.values()) > HOST_MOVED]  # type: ignore[union-attr]
    if not carried or len(moved) <= BUSY_SHARE * len(carried):
        return ""
    return (f"the host was busy during this run: the reference probe ran at over "
            f"{HOST_MOVED:g}x its usual median or p90 in {len(moved)} of {len(carried)} "
            "benchmarks, so no shift in it can be told from the host's; rerun on a quieter "
            "host, or compare with --infer-ab")


def decide_rows(rows: Sequence[GateRow], threshold: float, correction: str = CORRECTION,
                floors: Mapping[str, float] | None = None) -> list[GateRow]:
    """Adjust the pending rows' p-values together, then give each its verdict."""
    pending = [i for i, r in enumerate(rows) if r.status == "pending"]
    effects = [rows[i].effect for i in pending]
    slower = adjust_p_values([e.p_slower for e in effects if e], correction)
    faster = adjust_p_values([e.p_faster for e in effects if e], correction)
    out = list(rows)
    busy = busy_run(rows)
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
        status, guard = host_guard(verdict.status, row.host)
        if status == verdict.status and busy and status in ("regression", "improvement"):
            status, guard = "inconclusive", f"inconclusive: {busy}; as judged: "
        if status == verdict.status:
            status, guard = confirm(status, row, threshold)
        out[index] = replace(row, status=status,
                             reason=f"{guard}{verdict.status}: {verdict.reason}; {noise}; "
                                    f"{correction} over {len(pending)} benchmarks",
                             p_slower_adjusted=p_slow, threshold=threshold)
    return out


def compute_gate(
    baseline: Mapping[str, Sequence[float]],
    current: Mapping[str, tuple[str, str, Sequence[float]]],
    run_medians: Mapping[str, Sequence[float]],
    threshold: float,
    probed: Mapping[str, Probed] | None = None,
    floors: Mapping[str, float] | None = None,
) -> GateResult:
    """`current`: key -> (display name, metric, samples); keys absent from the baseline
    are "new" (not gated); keys in `probed` are judged raw and normalized. `floors`: the
    noise floors to use instead of this selection's own (a re-measurement of a few
    benchmarks is judged against the floors of the whole run)."""
    judged = []
    for key, (name, metric, samples) in current.items():
        if key not in baseline:
            row = GateRow(key, name, metric, "new", None, "not in the baseline", None,
                          compute_percentile(samples, 50))
            judged.append(Judged(row, {}))
        else:
            judged.append(judge_benchmark(key, name, metric, baseline[key], samples,
                                          run_medians.get(key, ()), (probed or {}).get(key)))
    if floors is None:
        floors = compute_noise_floors(judged)
    rows = [measure_effect(j, floors) for j in judged]
    return GateResult(tuple(decide_rows(rows, threshold, floors=floors)), threshold,
                      noise_floors=floors)
