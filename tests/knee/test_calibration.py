"""The roofline calibration: a GEMM or copy that raises fails, naming itself and the error.

Both peaks feed every MBU/MFU figure of a knee sweep, so one broken calibration must not
turn into a skipped or missing row while the other one passes.
"""

from __future__ import annotations

import math

import pytest
import torch

from infersuite.measure import calibration
from infersuite.measure.calibration import CalibrationError, run_calibration

SMALL = {"rounds": 2, "warmup": 1, "gemm_n": 64, "copy_bytes": 1 << 16}


def _broken(message: str):
    def measure(*args, **kwargs):
        raise RuntimeError(message)
    return measure


def test_healthy_calibration_measures_both_peaks():
    cal = run_calibration("cpu", **SMALL)
    assert (cal.device, cal.gemm_dtype, cal.gemm_n) == ("cpu", "float32", 64)
    assert cal.copy_bytes == 2 * (1 << 16)  # read + write of a 64 KiB float32 tensor
    for rate in (cal.flops_per_s, cal.flops_per_s_median, cal.bytes_per_s,
                 cal.bytes_per_s_median):
        assert math.isfinite(rate)
        assert rate > 0
    assert cal.flops_per_s >= cal.flops_per_s_median  # best round vs median round
    assert cal.bytes_per_s >= cal.bytes_per_s_median


@pytest.mark.parametrize(("target", "name"), [
    ("measure_gemm", "calibration GEMM (float32, n=64) on cpu failed"),
    ("measure_copy", "calibration copy (0.0625 MiB) on cpu failed"),
])
def test_a_failing_calibration_raises_naming_itself_and_the_error(monkeypatch, target, name):
    monkeypatch.setattr(calibration, target, _broken("planted: kernel launch failed"))
    with pytest.raises(CalibrationError) as info:
        run_calibration("cpu", **SMALL)
    assert str(info.value) == f"{name}: RuntimeError: planted: kernel launch failed"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_broken_timer_fails_the_calibration_instead_of_a_rate(monkeypatch):
    """Zero-second rounds would be an infinite rate; the calibration names itself."""
    monkeypatch.setattr(calibration, "time_device_op", lambda *a, **k: [0.0, 0.0])
    with pytest.raises(CalibrationError, match=r"calibration GEMM \(float32, n=64\) on cpu "
                                               r"failed: ValueError: time_s"):
        run_calibration("cpu", **SMALL)


def test_out_of_memory_halves_the_sizes_then_fails_naming_the_calibration(monkeypatch):
    sizes = []
    real_gemm = calibration.measure_gemm

    def gemm_oom_above_1024(device, n, dtype, rounds, warmup):
        sizes.append(n)
        if n > 1024:
            raise torch.cuda.OutOfMemoryError("planted: CUDA out of memory")
        return real_gemm(device, 64, dtype, rounds, warmup)  # a small stand-in GEMM

    monkeypatch.setattr(calibration, "measure_gemm", gemm_oom_above_1024)
    cal = run_calibration("cpu", rounds=2, warmup=1, gemm_n=4096, copy_bytes=1 << 18)
    assert sizes == [4096, 2048, 1024]
    assert (cal.gemm_n, cal.copy_bytes) == (1024, 2 * (1 << 16))  # both halved twice

    monkeypatch.setattr(calibration, "measure_copy", _raise_oom)  # at n=1024: no retry left
    with pytest.raises(CalibrationError, match=r"calibration copy \(0.25 MiB\) on cpu failed: "
                                               r"OutOfMemoryError: planted"):
        run_calibration("cpu", rounds=2, warmup=1, gemm_n=1024, copy_bytes=1 << 18)


def _raise_oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("planted: CUDA out of memory")


# The knee sweep test asks for the calibration before it sweeps; a planted fault in one of
# the two calibrations must fail that test (not skip it) with the calibration's name.
FAULT_CONFTEST = """
from infersuite.measure import calibration

_original = calibration.{target}

def _broken(*args, **kwargs):
    raise RuntimeError("planted: {target} fault")

def pytest_configure(config):
    calibration.{target} = _broken

def pytest_unconfigure(config):
    calibration.{target} = _original
"""


@pytest.mark.parametrize(("target", "name"), [
    ("measure_gemm", "GEMM (float32, n=1024)"),
    ("measure_copy", "copy (128 MiB)"),
])
def test_knee_sweep_fails_when_one_calibration_fails(pytester, copy_suite_module, target, name):
    pytester.makeconftest(FAULT_CONFTEST.format(target=target))
    copy_suite_module("perf/test_knee_sweep.py")
    result = pytester.runpytest("-k", "test_batch_size_knee", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "-p", "no:cacheprovider", "-rfEs")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines([f"*CalibrationError: calibration {name} on cpu failed: "
                                 f"RuntimeError: planted: {target} fault*"])


def test_gemm_runs_in_the_case_dtype(monkeypatch):
    """MFU's peak is the peak of the case's arithmetic: a bfloat16 case calibrates a
    bfloat16 GEMM, a float32 case a float32 one (the device default is not used)."""
    seen = []
    real = calibration.measure_gemm

    def spy(device, n, dtype, rounds, warmup):
        seen.append(dtype)
        return real(device, n, dtype, rounds, warmup)

    monkeypatch.setattr(calibration, "measure_gemm", spy)
    assert run_calibration("cpu", dtype="bfloat16", **SMALL).gemm_dtype == "bfloat16"
    assert run_calibration("cpu", dtype="float32", **SMALL).gemm_dtype == "float32"
    assert seen == ["bfloat16", "float32"]


def test_knee_recorder_calibrates_once_per_device_and_dtype(monkeypatch):
    from infersuite.plugin.knee import KneeRecorder

    calls = []

    def fake(device, dtype=None, **kwargs):
        calls.append((device, dtype))
        return run_calibration(device, dtype=dtype, **SMALL)

    monkeypatch.setattr(calibration, "run_calibration", fake)
    recorder = KneeRecorder(max_batch=None, budget_s=None, slo_ms=None, slo_factor=2.0)
    for dtype in ("float32", "bfloat16", "float32"):
        assert recorder.calibration("cpu", dtype).gemm_dtype == dtype
    assert calls == [("cpu", "float32"), ("cpu", "bfloat16")]
    assert set(recorder.calibration_dicts()) == {"cpu/float32", "cpu/bfloat16"}
