"""Knee points of synthetic sweeps: SLO knee, power knee, saturation fit, Kneedle flag."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from infersuite.stats import saturation
from infersuite.stats.knee import (
    SweepPoint,
    analyze_sweep,
    compute_kneedle,
    compute_power_knee,
    compute_slo_knee,
    fit_saturation,
)

GRID = [1, 2, 4, 8, 16, 32, 64, 128]


def _sweep(true_throughput, noise: float = 0.0, seed: int = 0) -> list[SweepPoint]:
    """Throughput with multiplicative noise; latency = b / X (Little's law), noised separately."""
    rng = np.random.default_rng(seed)
    points = []
    for b in GRID:
        x_true = true_throughput(b)
        x = x_true * (1.0 + noise * rng.standard_normal())
        p50 = b / x_true * (1.0 + noise * rng.standard_normal())
        points.append(SweepPoint(b, x, p50, 1.5 * p50))
    return points


def _amdahl(k: float, x_max: float = 5000.0):
    return lambda b: x_max * b / (b + k)


def _usl(lam: float = 100.0, sigma: float = 0.05, kappa: float = 0.002):
    return lambda b: lam * b / (1.0 + sigma * (b - 1.0) + kappa * b * (b - 1.0))


@pytest.mark.parametrize("k", [8, 32])
def test_power_knee_within_one_grid_step_on_noisy_amdahl(k: int) -> None:
    for seed in range(20):
        knee = compute_power_knee(_sweep(_amdahl(k), noise=0.03, seed=seed))
        assert knee is not None
        assert abs(GRID.index(knee.batch_size) - GRID.index(k)) <= 1, seed


@pytest.mark.parametrize("k", [8, 32])
def test_amdahl_k_recovered(k: int) -> None:
    exact = fit_saturation(_sweep(_amdahl(k)))
    assert exact["status"] == "ok"
    assert exact["model"] == "amdahl"
    assert exact["params"]["K"] == pytest.approx(k, rel=1e-3)
    assert exact["optimum_batch"] == pytest.approx(k, rel=1e-3)
    for seed in range(20):
        noisy = fit_saturation(_sweep(_amdahl(k), noise=0.03, seed=seed), model="amdahl")
        assert noisy["params"]["K"] == pytest.approx(k, rel=0.3), seed


def test_usl_curve_that_falls_after_its_peak() -> None:
    true_x = _usl()
    assert true_x(128) < true_x(16)  # the curve really falls
    dense = np.arange(1, 129)
    power_opt = int(dense[np.argmax([true_x(b) ** 2 / b for b in dense])])
    nearest = min(GRID, key=lambda b: abs(math.log(b / power_opt)))
    peak = math.sqrt((1.0 - 0.05) / 0.002)
    for seed in range(5):
        points = _sweep(true_x, noise=0.03, seed=seed)
        knee = compute_power_knee(points)
        assert knee is not None
        assert abs(GRID.index(knee.batch_size) - GRID.index(nearest)) <= 1
        fit = fit_saturation(points)
        assert fit["model"] == "usl"
        assert fit["r2"] > 0.95
        assert fit["optimum_batch"] == pytest.approx(peak, rel=0.3)
        assert fit["power_optimum_batch"] == pytest.approx(power_opt, rel=0.3)


def _latency_points(p99s: list[float], uppers: list[float | None] | None = None):
    uppers = uppers or [None] * len(p99s)
    return [
        SweepPoint(b, 100.0 * b, p99 / 2.0, p99, upper)
        for b, p99, upper in zip(GRID, p99s, uppers, strict=False)
    ]


P99S = [0.010, 0.011, 0.013, 0.018, 0.030, 0.055]


def test_slo_knee_with_explicit_slo() -> None:
    knee = compute_slo_knee(_latency_points(P99S), slo=0.020)
    assert knee is not None
    assert knee.batch_size == 8
    assert knee.detail["slo"] == 0.020
    assert knee.detail["slo_source"] == "explicit"


@pytest.mark.parametrize(("factor", "expected"), [(2.0, 8), (3.0, 16)])
def test_slo_knee_with_default_factor(factor: float, expected: int) -> None:
    knee = compute_slo_knee(_latency_points(P99S), slo_factor=factor)
    assert knee is not None
    assert knee.batch_size == expected
    assert knee.detail["slo"] == pytest.approx(factor * 0.010)
    assert "default" in str(knee.detail["slo_source"])


def test_slo_knee_uses_p99_upper_bound_when_known() -> None:
    uppers = [0.012, 0.013, 0.015, 0.022, 0.034, 0.060]
    knee = compute_slo_knee(_latency_points(P99S, uppers), slo=0.020)
    assert knee is not None
    assert knee.batch_size == 4
    assert knee.detail["latency_used"] == "p99 upper bound"


def test_no_batch_meets_slo_gives_none_and_a_warning() -> None:
    points = _latency_points(P99S)
    assert compute_slo_knee(points, slo=0.005) is None
    report = analyze_sweep(points, slo=0.005)
    assert report.slo_knee is None
    assert any("no batch meets the SLO" in w for w in report.warnings)


def test_non_ok_points_are_kept_but_ignored() -> None:
    clean = _sweep(_amdahl(8))
    failed = [
        SweepPoint(256, None, None, None, status="oom"),
        SweepPoint(3, 1e9, 1e-9, 1e-9, status="error"),
    ]
    report = analyze_sweep(clean + failed)
    reference = analyze_sweep(clean)
    assert report.power_knee == reference.power_knee
    assert report.slo_knee == reference.slo_knee
    assert report.fit["params"] == reference.fit["params"]
    assert len(report.points) == len(GRID) + 2
    assert any("256: oom" in w for w in report.warnings)


def test_all_points_failed() -> None:
    report = analyze_sweep([SweepPoint(1, None, None, None, status="oom")])
    assert report.power_knee is None
    assert report.slo_knee is None
    assert report.fit["status"] == "too few points"
    assert any("no ok points" in w for w in report.warnings)
    as_dict = report.to_dict()
    assert as_dict["power_knee"]["batch_size"] is None
    json.dumps(as_dict, allow_nan=False)


def test_two_points_give_knees_but_no_fit() -> None:
    report = analyze_sweep(_sweep(_amdahl(8))[:2])
    assert report.power_knee is not None
    assert report.fit["status"] == "too few points"
    assert any("only 2 ok points" in w for w in report.warnings)


def test_curve_fit_failure_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Optimal parameters not found: maxfev reached")

    monkeypatch.setattr(saturation, "curve_fit", fail)
    report = analyze_sweep(_sweep(_amdahl(8)))
    assert report.fit["status"] == "failed"
    assert "maxfev" in str(report.fit["reason"])
    assert report.power_knee is not None
    assert any("saturation fit failed" in w for w in report.warnings)


def test_kneedle_flagged_when_it_disagrees_with_power_knee() -> None:
    points = _sweep(_amdahl(8))
    result = compute_kneedle(points)
    assert result["power_knee_batch_size"] == 8
    steps = abs(GRID.index(result["batch_size"]) - GRID.index(8))
    assert result["grid_steps_from_power_knee"] == steps
    assert result["disagrees"] is (steps > 1)
    assert result["disagrees"]  # on a 1..128 grid Kneedle lands at 32, two steps off


def test_kneedle_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kneed", None)
    assert compute_kneedle(_sweep(_amdahl(8))) == {"batch_size": None, "note": "pip install kneed"}


def test_duplicate_batch_sizes_rejected() -> None:
    points = [*_sweep(_amdahl(8)), SweepPoint(8, 1.0, 1.0, 1.0)]
    with pytest.raises(ValueError, match="batch_size 8 appears more than once"):
        analyze_sweep(points)


def test_report_is_json_ready_and_ordered() -> None:
    as_dict = analyze_sweep(_sweep(_usl(), noise=0.03, seed=1)).to_dict()
    assert list(as_dict)[:4] == ["power_knee", "slo_knee", "fit", "kneedle"]
    json.dumps(as_dict, allow_nan=False)
