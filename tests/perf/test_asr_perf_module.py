"""The speech timing module end to end: its stages, its headline, and a planted slow stage."""

from __future__ import annotations

import json

import pytest

# Imported here first: in-process pytester runs restore sys.modules afterwards.
import infersuite.engines.asr  # noqa: F401

SLOW_ENCODER = """
import time
from infersuite.engines import asr

_encode = asr.HfAsrEngine.encode

def slow(self, features):
    time.sleep(0.25)  # far above the toy's other stages, even on a host 3x slower
    return _encode(self, features)

def pytest_configure(config):
    asr.HfAsrEngine.encode = slow

def pytest_unconfigure(config):
    asr.HfAsrEngine.encode = _encode
"""


def _run(pytester, copy_suite_module, conftest: str = ""):
    copy_suite_module("perf/test_asr_perf.py")
    if conftest:
        pytester.makeconftest(conftest)
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-rounds", "16",
                                "--infer-report-dir", "rep", "-k", "latency")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    [bench] = report["benchmarks"]
    return result, bench


def _median(values):
    return sorted(values)[len(values) // 2]


def test_stages_add_up_and_the_headline_gives_rtf_and_the_dominant_stage(pytester,
                                                                           copy_suite_module):
    result, bench = _run(pytester, copy_suite_module)
    metrics = {name: bench["metrics"][name]["samples"] for name in bench["metrics"]}
    assert {"features_s", "encoder_s", "first_token_s", "decode_s", "e2e_s"} <= set(metrics)
    for i, e2e in enumerate(metrics["e2e_s"]):
        parts = metrics["features_s"][i] + metrics["encoder_s"][i] + metrics["decode_s"][i]
        assert parts == pytest.approx(e2e, rel=1e-6)
        assert metrics["first_token_s"][i] <= metrics["decode_s"][i]
    extra = bench["extra"]
    assert sum(extra["stage_share"].values()) == pytest.approx(1.0, abs=0.05)
    rtf = extra["rtf_p50"]["value"]
    assert rtf == pytest.approx(_median(metrics["e2e_s"]) / 20.0, rel=0.05)
    result.stdout.fnmatch_lines(["*test_asr_request_latency*: RTF 0.0* on a 20 s clip; * "
                                 "dominates (features *%, encoder *%, decode *% of the "
                                 "median request)"])


def test_a_planted_slow_encoder_is_named_as_the_dominant_stage(pytester, copy_suite_module):
    _, bench = _run(pytester, copy_suite_module, SLOW_ENCODER)
    encoder = bench["metrics"]["encoder_s"]["samples"]
    assert _median(encoder) >= 0.25
    assert bench["extra"]["dominant_stage"] == "encoder"
    assert bench["extra"]["stage_share"]["encoder"] > 0.5


def test_the_knee_sweep_sees_what_batching_buys(pytester, copy_suite_module):
    """An encoder with a fixed 0.25 s cost per call, whatever the batch: four clips cost
    little more than one, so audio seconds per second grow about fourfold and the power
    knee is the largest batch. The sweep goes to knee.json as a speech sweep."""
    copy_suite_module("perf/test_asr_perf.py")
    pytester.makeconftest(SLOW_ENCODER)
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-report-dir", "rep", "-k",
                                "knee", "--infer-sweep-max-batch", "4",
                                "--infer-sweep-budget-s", "20")
    result.assert_outcomes(passed=1)
    [sweep] = json.loads((pytester.path / "rep" / "knee.json").read_text())["sweeps"]
    assert (sweep["workload"], sweep["clip_s"], sweep["id"]) == ("speech", 20.0,
                                                                 "whisper-toy-float32-cpu")
    speed = {p["batch_size"]: p["audio_s_per_s"] for p in sweep["points"]}
    assert sorted(speed) == [1, 2, 4]
    assert speed[4] > 2 * speed[1], speed
    assert sweep["knee"]["power_knee"]["batch_size"] == 4
    result.stdout.fnmatch_lines(["batch sweep whisper-toy-float32-cpu (*; a 20 s clip per "
                                 "request through feature extraction, encoder and 16 decoded "
                                 "tokens)", "*audio s/s*", "power knee: batch 4 *"])
