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


def _run(host_speed: float, work_change: float, seed: int) -> tuple[list[float], list[float]]:
    """60 rounds on a host running at `host_speed` (1.3 = everything 30% slower): the
    workload's times and the probe's, both scaled by the host, the workload also by
    `work_change`, each with its own 1% noise."""
    rng = np.random.default_rng(seed)
    host = host_speed * np.exp(rng.normal(0, 0.01, 60))  # shared by probe and workload
    work = 0.010 * work_change * host * np.exp(rng.normal(0, 0.01, 60))
    probe = 0.0005 * host * np.exp(rng.normal(0, 0.01, 60))
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
    probes, medians = baseline_probes(data, "m::t")
    assert len(probes) == len(data["benchmarks"]["m::t"]["samples"]) == 60
    assert len(medians) == 2
    assert medians[0] == pytest.approx(medians[1], rel=0.02)  # the host's 20% cancels


def _gate(baseline: dict, work_change: float, host_speed: float, with_probe: bool = True):
    work, probe = _run(host_speed, work_change, seed=99)
    entry = baseline["benchmarks"]["m::t"]
    _, normalized = baseline_probes(baseline, "m::t")
    [row] = compute_gate({"m::t": entry["samples"]}, {"m::t": ("t", "e2e_s", work)},
                         {"m::t": [r["median"] for r in entry["runs"]]}, 0.05,
                         {"m::t": Probed(probe, normalized)} if with_probe else None).rows
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
    """Control: the code itself 10% slower on the same host is a regression."""
    row = _gate(_baseline(HOST_SPEEDS), work_change=1.10, host_speed=1.0)
    assert row.gated_on == "normalized"
    assert row.status == "regression", row.reason


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
