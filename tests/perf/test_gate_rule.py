"""The cross-run gate over many benchmarks: Holm keeps a whole run's false-alarm chance at
alpha; without it a 40-benchmark suite alarms by chance in about a third of its runs."""

from __future__ import annotations

import numpy as np

from infersuite.baseline.gate import compute_gate

BENCHMARKS = 40


def _gate_run(rng: np.random.Generator, slowdown: float = 0.0, slowed: int = 0):
    """A baseline of 10 runs per benchmark and one current run, every run at its own
    level (5% log scatter), the first `slowed` benchmarks made `slowdown` slower."""
    baseline, current, medians = {}, {}, {}
    for b in range(BENCHMARKS):
        levels = 0.01 * np.exp(rng.normal(0.0, 0.05, 11))
        runs = [level * np.exp(rng.normal(0.0, 0.01, 30)) for level in levels]
        factor = 1.0 + slowdown if b < slowed else 1.0
        key = f"b{b}"
        baseline[key] = runs[9].tolist()
        medians[key] = [float(np.median(r)) for r in runs[:10]]
        current[key] = (key, "e2e_s", (runs[10] * factor).tolist())
    return compute_gate(baseline, current, medians, 0.05)


def test_holm_keeps_a_run_of_40_unchanged_benchmarks_quiet():
    rng = np.random.default_rng(5)
    flagged_runs = uncorrected_runs = 0
    for _ in range(150):
        gate = _gate_run(rng)
        flagged_runs += bool(gate.regressions)
        uncorrected_runs += any(r.effect.p_slower < 0.01 and r.effect.ratio >= 1.025
                                for r in gate.rows)
    assert flagged_runs <= 4  # Holm: at most 1% of runs expected
    # control: the same rows without the correction alarm in a tenth of the runs or more
    # (1 - 0.99**40 = 33% at the nominal rate; the noise floor makes each test stricter)
    assert uncorrected_runs >= 10


def test_a_slowdown_well_above_the_noise_is_flagged_and_named():
    rng = np.random.default_rng(6)
    gate = _gate_run(rng, slowdown=0.5, slowed=3)
    assert {r.key for r in gate.regressions} == {"b0", "b1", "b2"}
    row = gate.regressions[0]
    assert "holm over 40 benchmarks" in row.reason
    assert row.effect.ratio_lower > 1.0
    assert row.p_slower_adjusted < 0.01


def test_a_small_slowdown_inside_the_noise_is_inconclusive_not_passed():
    rng = np.random.default_rng(7)
    gate = _gate_run(rng, slowdown=0.05, slowed=40)
    assert not [r for r in gate.rows if r.status == "unchanged"]
    assert all(r.status in ("inconclusive", "regression") for r in gate.rows)


def test_a_benchmark_whose_runs_landed_close_is_held_to_the_hosts_noise():
    """Of 20 benchmarks whose runs scatter by 10%, one had its 5 recorded runs land within
    1% of each other by chance; a busier hour then makes its run 35% slower. Judged on its
    own scatter that is an alarm (the control); floored at the run's median scatter it is
    not, and the reason says which noise was used."""
    from infersuite.stats.compare import compute_run_effect

    rng = np.random.default_rng(8)
    baseline, current, medians = {}, {}, {}
    for b in range(20):
        spread = 0.01 if b == 0 else 0.10
        runs = 0.01 * np.exp(rng.normal(0.0, spread, 5))
        key = f"b{b}"
        medians[key] = runs.tolist()
        baseline[key] = [float(runs[-1])] * 3
        level = float(np.exp(np.mean(np.log(runs))))
        current[key] = (key, "e2e_s", [level * (1.35 if b == 0 else 1.0)] * 3)
    own = compute_run_effect(medians["b0"], current["b0"][2][0])
    assert own.p_slower * 20 < 0.01  # control: an alarm even after Holm
    gate = compute_gate(baseline, current, medians, 0.05)
    assert not gate.regressions
    row = next(r for r in gate.rows if r.key == "b0")
    assert row.status == "inconclusive"
    assert "the median of the run's benchmarks" in row.reason
