"""The in-run reference probe: stored with a baseline, and a gate that judges samples
divided by their round's probe when that series is the quieter one."""

from __future__ import annotations

import numpy as np
import pytest

from infersuite.baseline.gate import Probed, compute_gate, judge_benchmark
from infersuite.baseline.store import baseline_probes, merge_run
from infersuite.measure.probe import make_probe
from infersuite.measure.records import PerfRecord

FP = {"slug": "cpu-test-2c", "git_commit": None}


def _run(host_speed: float, work_change: float, seed: int,
         probe_feels: float = 1.0) -> tuple[list[float], list[float]]:
    """60 rounds on a host running at `host_speed` (1.3 = everything 30% slower): the
    workload's times and the probe's, both scaled by the host (the probe by the host's
    `probe_feels` power: a small probe feels a busy host less), the workload also by
    `work_change`, each with its own 1% noise."""
    rng = np.random.default_rng(seed)
    host = host_speed * np.exp(rng.normal(0, 0.01, 60))  # shared by probe and workload
    work = 0.010 * work_change * host * np.exp(rng.normal(0, 0.01, 60))
    probe = 0.0005 * host ** probe_feels * np.exp(rng.normal(0, 0.01, 60))
    return work.tolist(), probe.tolist()


def _baseline(speeds: list[float]) -> dict:
    data = None
    for seed, speed in enumerate(speeds):
        work, probe = _run(speed, 1.0, seed)
        data = merge_run(data, [PerfRecord("t", "m::t", "e2e_s",
                                           {"e2e_s": work, "probe_s": probe})], FP)
    return data


def test_a_baseline_keeps_probes_and_normalized_medians():
    data = _baseline([1.0, 1.2])
    probes, medians, probe_runs = baseline_probes(data, "m::t")
    assert len(probes) == len(data["benchmarks"]["m::t"]["samples"]) == 60
    assert len(medians) == len(probe_runs["p50"]) == len(probe_runs["p90"]) == 2
    assert medians[0] == pytest.approx(medians[1], rel=0.02)  # the host's 20% cancels
    assert probe_runs["p50"][1] / probe_runs["p50"][0] == pytest.approx(1.2, rel=0.02)


def _gate(baseline: dict, work_change: float, host_speed: float, with_probe: bool = True,
          probe_feels: float = 1.0):
    work, probe = _run(host_speed, work_change, 99, probe_feels)
    entry = baseline["benchmarks"]["m::t"]
    _, normalized, probe_runs = baseline_probes(baseline, "m::t")
    probed = {"m::t": Probed(probe, normalized, probe_runs)} if with_probe else None
    [row] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                         {"m::t": [r["median"] for r in entry["runs"]]}, 0.05, probed).rows
    return row


# Five baseline runs on a host whose speed wanders by about 10% from run to run.
HOST_SPEEDS = [1.0, 1.15, 0.95, 1.08, 1.12]


def test_a_slower_host_is_not_a_regression_once_normalized():
    """The current run on a 30% slower host with the same code: raw alone could only say
    inconclusive (its runs scatter by ~8%), the probe-normalized series is quiet, unchanged,
    and is gated on."""
    row = _gate(_baseline(HOST_SPEEDS), work_change=1.0, host_speed=1.3)
    assert row.gated_on == "normalized"
    assert row.noise["normalized"] < row.noise["raw"]
    assert row.status == "unchanged", row.reason
    assert row.other_ratio > 1.15  # raw: about 1.3 / 1.06, kept for the report
    raw_only = _gate(_baseline(HOST_SPEEDS), work_change=1.0, host_speed=1.3, with_probe=False)
    assert raw_only.gated_on == "raw"
    assert raw_only.status != "unchanged", raw_only.reason


def test_a_real_slowdown_survives_normalization():
    """Control: the code itself 50% slower on the same host is a regression (raw, whose
    runs scatter by ~8%, must confirm it too)."""
    row = _gate(_baseline(HOST_SPEEDS), work_change=1.5, host_speed=1.0)
    assert row.gated_on == "normalized"
    assert row.status == "regression", row.reason


def test_a_busy_host_the_probe_feels_is_inconclusive_not_a_regression():
    """The same code on a host five times as busy, which the small probe feels only in
    part (x2.24): normalized, the workload still looks twice as slow, and without the
    guard that is an alarm (the control, judged without the probe's run statistics). The
    probe itself ran at over 2x its usual, so the gate says inconclusive and why."""
    busy = _gate(_baseline(HOST_SPEEDS), work_change=1.0, host_speed=5.0, probe_feels=0.5)
    assert busy.status == "inconclusive", busy.reason
    assert busy.reason.startswith("inconclusive: the host itself was slower")
    assert busy.host["p50"] > 2.0
    work, probe = _run(5.0, 1.0, 99, 0.5)
    entry = _baseline(HOST_SPEEDS)["benchmarks"]["m::t"]
    _, normalized, _ = baseline_probes(_baseline(HOST_SPEEDS), "m::t")
    [unguarded] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                               {"m::t": [r["median"] for r in entry["runs"]]}, 0.05,
                               {"m::t": Probed(probe, normalized)}).rows
    assert unguarded.status == "regression", unguarded.reason


def test_the_guard_leaves_a_slower_code_path_a_regression():
    """Control: the code 50% slower on a host as usual; the probe did not move."""
    row = _gate(_baseline(HOST_SPEEDS), work_change=1.5, host_speed=1.05, probe_feels=0.5)
    assert row.status == "regression", row.reason
    assert max(row.host.values()) < 2.0


def test_the_quieter_series_is_chosen_from_the_baseline_alone():
    """A probe whose runs scatter more than the workload's makes normalizing worse: raw
    wins, whatever the current run shows."""
    rng = np.random.default_rng(3)
    work = (0.010 * np.exp(rng.normal(0, 0.01, 60))).tolist()
    noisy_probe = (0.0005 * np.exp(rng.normal(0, 0.2, 60))).tolist()
    row = judge_benchmark("k", "t", "e2e_s", work, work, [0.010, 0.0101, 0.0100],
                          Probed(noisy_probe, [20.0, 26.0, 17.0])).row
    assert row.gated_on == "raw"
    assert row.noise["raw"] < row.noise["normalized"]


def test_the_probe_runs_and_takes_under_5_ms_here():
    probe = make_probe("cpu")
    times = sorted(probe() for _ in range(20))
    assert 0 < times[10] < 0.005


def test_bursts_in_the_probe_tail_make_a_shift_inconclusive():
    """A host busy in bursts: most rounds of the workload are hit (its median x2), while
    the probe, far shorter, is caught by a burst in one round of five: its median stays,
    its p90 jumps. The guard reads the p90; without the bursts in the probe the same
    workload shift is a regression (control)."""
    baseline = _baseline(HOST_SPEEDS)
    entry = baseline["benchmarks"]["m::t"]
    _, normalized, probe_runs = baseline_probes(baseline, "m::t")
    work, probe = _run(1.05, 1.0, 7)
    hit = np.arange(60) % 5 != 0  # four rounds in five
    work = (np.asarray(work) * np.where(hit, 2.0, 1.0)).tolist()
    bursty = (np.asarray(probe) * np.where(np.arange(60) % 5 == 1, 6.0, 1.0)).tolist()

    def gate(probes):
        [row] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                             {"m::t": [r["median"] for r in entry["runs"]]}, 0.05,
                             {"m::t": Probed(probes, normalized, probe_runs)}).rows
        return row

    row = gate(bursty)
    assert row.status == "inconclusive", row.reason
    assert "probe's p90 " in row.reason
    assert row.host["p50"] < 2.0  # the median did not show it
    assert gate(probe).status == "regression"


def test_a_shift_only_one_series_shows_is_inconclusive():
    """The probe caught a burst the workload did not (probe x1.45 in every round, under
    the guard's 1.5x): normalized, the workload looks 31% faster, raw it did not move.
    Without the raw series' confirmation that is no improvement."""
    work, probe = _run(1.05, 1.0, 11)
    baseline = _baseline(HOST_SPEEDS)
    entry = baseline["benchmarks"]["m::t"]
    _, normalized, probe_runs = baseline_probes(baseline, "m::t")
    [row] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                         {"m::t": [r["median"] for r in entry["runs"]]}, 0.05,
                         {"m::t": Probed([p * 1.45 for p in probe], normalized,
                                         probe_runs)}).rows
    assert row.gated_on == "normalized"
    assert row.status == "inconclusive", row.reason
    assert row.reason.startswith("inconclusive: the raw series does not confirm it")


def test_a_run_busy_across_its_benchmarks_flags_nothing():
    """Five benchmarks, each baseline run quiet; this run's probe p90 at 3x its usual in
    two of them (more than a fifth) and every workload 80% slower: each shift would be a
    regression, but the run was on a busy host, so all are inconclusive. Control: the
    same slowdown with a quiet probe is a regression in every benchmark."""
    baseline = _baseline(HOST_SPEEDS)
    entry = baseline["benchmarks"]["m::t"]
    _, normalized, probe_runs = baseline_probes(baseline, "m::t")

    def gate(busy_probes: int):
        current, probed = {}, {}
        for b in range(5):
            work, probe = _run(1.0, 1.8, 20 + b)
            if b < busy_probes:
                probe = [p * (3.0 if i % 5 == 0 else 1.0) for i, p in enumerate(probe)]
            current[f"b{b}"] = (f"b{b}", "e2e_s", work)
            probed[f"b{b}"] = Probed(probe, normalized, probe_runs)
        keys = list(current)
        return compute_gate(dict.fromkeys(keys, entry["samples"]), current,
                            {key: [r["median"] for r in entry["runs"]] for key in keys},
                            0.05, probed)

    busy = gate(busy_probes=2)
    assert not busy.regressions
    assert all("the host was busy during this run" in r.reason
               for r in busy.rows if "host itself" not in r.reason)
    assert len(gate(busy_probes=0).regressions) == 5


def test_busy_baseline_runs_are_left_out_of_the_scatter():
    """Of six baseline runs one was recorded on a busy host (probe p90 4x, workload 2x):
    it is left out, so the scatter is the quiet runs' and a 60% slowdown is seen. Kept
    in (the control, its probe statistics not lined up with the runs), the busy run
    widens the scatter and the same slowdown is inconclusive."""
    from infersuite.baseline.gate import quiet_runs

    data = None
    for seed, (speed, tail) in enumerate([(1.0, 1), (1.03, 1), (0.98, 1), (2.0, 4),
                                          (1.01, 1), (0.99, 1)]):
        work, probe = _run(speed, 1.0, seed)
        probe = [p * (tail if i % 4 == 0 else 1.0) for i, p in enumerate(probe)]
        data = merge_run(data, [PerfRecord("t", "m::t", "e2e_s",
                                           {"e2e_s": work, "probe_s": probe})], FP)
    entry = data["benchmarks"]["m::t"]
    _, normalized, probe_runs = baseline_probes(data, "m::t")
    medians = [r["median"] for r in entry["runs"]]
    kept, _ = quiet_runs(medians, Probed([1.0], normalized, probe_runs))
    assert len(kept) == 5
    work, probe = _run(1.0, 1.6, 50)

    def gate(runs):
        [row] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                             {"m::t": medians}, 0.05,
                             {"m::t": Probed(probe, normalized, runs)}).rows
        return row

    assert gate(probe_runs).status == "regression"
    unaligned = {"p50": probe_runs["p50"][1:], "p90": probe_runs["p90"][1:]}
    assert gate(unaligned).status == "inconclusive"
