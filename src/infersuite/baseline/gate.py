"""The regression gate: each benchmark's raw samples against its baseline's, one verdict each.

Rule (stats.compare.compute_verdict): regression = slower with p < alpha and a median shift
larger than max(threshold, the baseline's run-to-run bound: how far one more run's median
may land by chance, predicted from its recorded runs). Two answers become
"inconclusive" instead, because the host's noise is unknown or larger than the question:

- any verdict against a baseline of fewer than 2 runs: one run's own samples say nothing of
  how far a second run lands, so a shift (or its absence) may be run-to-run noise;
- "unchanged" when that bound is above the threshold: a change of the threshold's size
  would have gone unseen, so passing would claim more than the data shows.

Where both sides carry the in-run reference probe (measure/probe.py), each benchmark is also
judged on its samples divided by their round's probe, and the gate keeps the verdict of the
series whose baseline is less noisy (compute_probed_gate_row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from infersuite.stats.compare import Verdict, compute_history_spread, compute_verdict
from infersuite.stats.percentiles import compute_percentile

# Exit statuses of a gated run, the same for the cross-run gate, A/B mode and `infersuite
# compare --fail-on-regression`; pytest's own stay as they are (1: a test failed, which
# wins over both; 4: usage error).
EXIT_REGRESSION = 10
EXIT_INCONCLUSIVE = 11


@dataclass(frozen=True)
class GateRow:
    key: str  # the benchmark's fullname
    name: str
    metric: str
    status: str  # regression | improvement | unchanged | inconclusive | insufficient | new
    verdict: Verdict | None
    history_spread: float
    baseline_median: float | None
    current_median: float | None
    gated_on: str = "raw"  # raw | normalized (samples divided by their round's probe)
    noise: dict[str, float] | None = None  # each series' noise, where both were judged
    other_ratio: float | None = None  # the median ratio of the series not gated on


@dataclass(frozen=True)
class GateResult:
    rows: tuple[GateRow, ...]
    threshold: float

    @property
    def regressions(self) -> list[GateRow]:
        return [r for r in self.rows if r.status == "regression"]

    @property
    def inconclusive(self) -> list[GateRow]:
        return [r for r in self.rows if r.status == "inconclusive"]


def compute_gate_row(key: str, name: str, metric: str, baseline: Sequence[float],
                     current: Sequence[float], run_medians: Sequence[float],
                     threshold: float) -> GateRow:
    spread = compute_history_spread(run_medians) if len(run_medians) >= 2 else 0.0
    verdict = compute_verdict(baseline, current, threshold=threshold, history_spread=spread)
    status, why = verdict.status, ""
    if status in ("regression", "improvement", "unchanged") and len(run_medians) < 2:
        status = "inconclusive"
        runs = len(run_medians)
        why = (f"{verdict.status} against a baseline with {runs} recorded "
               f"run{'' if runs == 1 else 's'}: its run-to-run spread is unknown, so a shift, "
               "or its absence, may be that noise; save the baseline again "
               "(--infer-save-baseline appends a run)")
    elif status == "unchanged" and spread > threshold:
        status = "inconclusive"
        why = (f"the baseline's {len(run_medians)} runs let one more run's median land up to "
               f"+{spread:.1%} by chance, above the {threshold:.0%} threshold: a change of "
               "that size would go unseen here; save more runs, record on a quieter machine, "
               "or compare with --infer-ab")
    if why:
        verdict = replace(verdict, status=status, reason=f"inconclusive: {why}; "
                                                         f"{verdict.reason}")
    return GateRow(key, name, metric, status, verdict, spread,
                   compute_percentile(baseline, 50), compute_percentile(current, 50))


def compute_noise(samples: Sequence[float], run_medians: Sequence[float]) -> float:
    """How noisy a baseline series is: the run-to-run bound of its run medians where it has
    2 or more (pass none to compare within-run noise), else its own samples' median
    absolute deviation over their median."""
    if len(run_medians) >= 2:
        return compute_history_spread(run_medians)
    values = np.asarray(samples, dtype=np.float64)
    median = float(np.median(values))
    return float(np.median(np.abs(values - median)) / median)


@dataclass(frozen=True)
class Probed:
    """A benchmark's reference-probe times (one per sample) on both sides, and the
    baseline's per-run medians of the normalized samples."""

    baseline: Sequence[float]
    current: Sequence[float]
    normalized_medians: Sequence[float]


def compute_probed_gate_row(key: str, name: str, metric: str, baseline: Sequence[float],
                            current: Sequence[float], run_medians: Sequence[float],
                            threshold: float, probed: Probed) -> GateRow:
    """Judge the raw samples and the samples divided by their round's probe; gate on the
    series whose baseline is less noisy (compute_noise: chosen from the baseline alone, so
    the choice cannot lean on the outcome), and keep the other's ratio for the report."""
    base_norm = np.asarray(baseline) / np.asarray(probed.baseline)
    cur_norm = np.asarray(current) / np.asarray(probed.current)
    raw = compute_gate_row(key, name, metric, baseline, current, run_medians, threshold)
    normalized = compute_gate_row(key, name, metric, base_norm.tolist(), cur_norm.tolist(),
                                  probed.normalized_medians, threshold)
    # Compare like with like: run-to-run bounds when both series have 2+ runs, else both
    # series' within-run noise.
    both = len(run_medians) >= 2 and len(probed.normalized_medians) >= 2
    noise = {"raw": compute_noise(baseline, run_medians if both else ()),
             "normalized": compute_noise(base_norm.tolist(),
                                         probed.normalized_medians if both else ())}
    chosen, other = ((normalized, raw) if noise["normalized"] < noise["raw"]
                     else (raw, normalized))
    other_ratio = other.verdict.shift.median_ratio if other.verdict and other.verdict.shift \
        else None
    return replace(chosen, gated_on="normalized" if chosen is normalized else "raw",
                   noise=noise, other_ratio=other_ratio, baseline_median=raw.baseline_median,
                   current_median=raw.current_median)


def compute_gate(
    baseline: Mapping[str, Sequence[float]],
    current: Mapping[str, tuple[str, str, Sequence[float]]],
    run_medians: Mapping[str, Sequence[float]],
    threshold: float,
    probed: Mapping[str, Probed] | None = None,
) -> GateResult:
    """`current`: key -> (display name, metric, samples); keys absent from the baseline
    are "new" (not gated); keys in `probed` are judged raw and normalized."""
    rows = []
    for key, (name, metric, samples) in current.items():
        if key not in baseline:
            rows.append(GateRow(key, name, metric, "new", None, 0.0, None,
                                    compute_percentile(samples, 50)))
        elif probed and key in probed:
            rows.append(compute_probed_gate_row(key, name, metric, baseline[key], samples,
                                                run_medians.get(key, ()), threshold,
                                                probed[key]))
        else:
            rows.append(compute_gate_row(key, name, metric, baseline[key], samples,
                                         run_medians.get(key, ()), threshold))
    return GateResult(tuple(rows), threshold)
