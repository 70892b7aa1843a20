"""The perf plugin end to end in pytester runs: reports, baselines, the regression gate."""

from __future__ import annotations

import json

import pytest

from infersuite.baseline.gate import EXIT_INCONCLUSIVE, EXIT_REGRESSION

BENCH_FILE = """
import time
import pytest

pytestmark = pytest.mark.perf

def test_fast(benchmark, work_s):
    benchmark.pedantic(time.sleep, args=(work_s,), rounds=40, iterations=1, warmup_rounds=2)

def test_steady(benchmark):
    benchmark.pedantic(time.sleep, args=(0.002,), rounds=40, iterations=1, warmup_rounds=2)
"""
CONFTEST = """
import pytest

@pytest.fixture
def work_s():
    return 0.002 * {factor}
"""


@pytest.fixture
def bench_dir(pytester):
    pytester.makepyfile(test_bench=BENCH_FILE)
    pytester.makeconftest(CONFTEST.format(factor=1.0))
    return pytester


def _run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--infer-device", "cpu",
                              "--infer-report-dir", "rep", *args)


def test_report_files_and_benchmark_json_hooks(bench_dir):
    result = _run(bench_dir, "--benchmark-json", "bench.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*infersuite perf*", "*test_fast*round_s*40*"])
    report = json.loads((bench_dir.path / "rep" / "report.json").read_text())
    assert report["schema"] == "infersuite.report/1"
    assert {"fingerprint", "benchmarks", "timing", "gate", "series"} <= set(report)
    fast = next(b for b in report["benchmarks"] if b["name"] == "test_fast")
    assert len(fast["metrics"]["round_s"]["samples"]) == 40
    assert (bench_dir.path / "rep" / "report.md").read_text().startswith("# infersuite")
    bench = json.loads((bench_dir.path / "bench.json").read_text())
    assert bench["machine_info"]["infersuite"]["slug"] == report["fingerprint"]["slug"]
    p99 = bench["benchmarks"][0]["stats"]["percentiles"]["p99"]
    assert p99["enough_samples"] is False
    assert p99["lower"] is not None


def test_gate_a_a_passes_and_a_b_fails_naming_the_benchmark(bench_dir):
    base = str(bench_dir.path / "baseline.json")
    for _ in range(4):  # four runs: the gate learns the run-to-run spread
        _run(bench_dir, "--infer-save-baseline", base).assert_outcomes(passed=2)
    same = _run(bench_dir, "--infer-baseline", base)
    # 11 where this host's two baseline runs differ by more than the threshold
    assert same.ret in (0, EXIT_INCONCLUSIVE), same.stdout.str()
    same.stdout.fnmatch_lines(["*regression gate vs*"])
    bench_dir.makeconftest(CONFTEST.format(factor=1.3))
    slow = _run(bench_dir, "--infer-baseline", base)
    slow.assert_outcomes(passed=2)
    assert slow.ret == EXIT_REGRESSION
    slow.stdout.fnmatch_lines(["*PERFORMANCE REGRESSION*", "*test_fast*regression*+*%*",
                               "*FAILED: 1 performance regression*"])
    assert "test_steady  " not in "\n".join(
        line for line in slow.outlines if "regression  " in line)


def test_a_shift_against_a_one_run_baseline_is_inconclusive(bench_dir):
    """One saved run says nothing of how far the next run lands: a 30% shift is reported,
    not called a regression, nor the steady benchmark a pass; the run exits 11 with the
    remedy."""
    base = str(bench_dir.path / "baseline.json")
    _run(bench_dir, "--infer-save-baseline", base).assert_outcomes(passed=2)
    bench_dir.makeconftest(CONFTEST.format(factor=1.3))
    slow = _run(bench_dir, "--infer-baseline", base)
    assert slow.ret == EXIT_INCONCLUSIVE, slow.stdout.str()
    slow.stdout.fnmatch_lines(["*test_fast*inconclusive*", "*INCONCLUSIVE: 2 benchmark(s)*"])
    report = json.loads((bench_dir.path / "rep" / "report.json").read_text())
    [row] = [r for r in report["gate"]["rows"] if r["name"] == "test_fast"]
    assert "save the baseline again" in row["reason"]


def test_a_baseline_sharing_no_benchmark_fails_instead_of_gating_nothing(bench_dir):
    base = bench_dir.path / "baseline.json"
    _run(bench_dir, "--infer-save-baseline", str(base)).assert_outcomes(passed=2)
    data = json.loads(base.read_text())
    data["benchmarks"] = {f"{key}-renamed": entry for key, entry in data["benchmarks"].items()}
    base.write_text(json.dumps(data))
    result = _run(bench_dir, "--infer-baseline", str(base))
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED: *baseline.json shares no benchmark with this run*"])


@pytest.mark.parametrize("content", ['{"schema": "infersuite.baseline/1", "bench', "",
                                     '{"schema": "other/9"}'])
@pytest.mark.parametrize("option", ["--infer-baseline", "--infer-save-baseline"])
def test_bad_baseline_is_a_usage_error_and_left_untouched(bench_dir, content, option):
    path = bench_dir.path / "baseline.json"
    path.write_text(content)
    before = path.read_bytes()
    result = _run(bench_dir, option, str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*baseline {path}:*left untouched*"])
    assert path.read_bytes() == before


def test_baseline_from_another_device_is_refused_unless_asked(bench_dir):
    base = bench_dir.path / "baseline.json"
    _run(bench_dir, "--infer-save-baseline", str(base)).assert_outcomes(passed=2)
    data = json.loads(base.read_text())
    data["fingerprint"]["slug"] = "nvidia-h100-80gb-hbm3"
    base.write_text(json.dumps(data))
    refused = _run(bench_dir, "--infer-baseline", str(base))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*recorded on 'nvidia-h100-80gb-hbm3'*any-device*"])
    accepted = _run(bench_dir, "--infer-baseline", str(base), "--infer-baseline-any-device")
    accepted.assert_outcomes(passed=2)


def test_save_twice_keeps_two_runs(bench_dir):
    base = bench_dir.path / "baseline.json"
    for _ in range(2):
        _run(bench_dir, "--infer-save-baseline", str(base), "-k", "steady")
    entry = next(iter(json.loads(base.read_text())["benchmarks"].values()))
    assert len(entry["runs"]) == 2
    assert len(entry["samples"]) == 40


def test_options_are_in_help(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--infer-rounds=N*", "*--infer-baseline=PATH*",
                                 "*--infer-regression-threshold=FRACTION*"])


def test_bad_rounds_value_fails_at_parse_time(pytester):
    result = pytester.runpytest("--infer-rounds", "zero")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-rounds*'zero' is not an integer*"])


REAL_FILE = """
import pytest
from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import RequestInput, run_timed_request

pytestmark = pytest.mark.perf

def test_llama(benchmark, infer_perf, infer_case):
    request = RequestInput(None, ((17, 18, 19, 20, 21, 22),))
    timings = infer_perf.measure(
        benchmark, lambda: run_timed_request(infer_case.engine, request, 6),
        rounds=infer_perf.rounds(80), warmup_rounds=10)
    infer_perf.record(compute_request_metrics(timings), primary="e2e_s")
"""
SLOW_MODEL_CONFTEST = """
import time
import pytest

@pytest.fixture(autouse=True)
def slower_model(request, monkeypatch):
    case = request.getfixturevalue("infer_case")
    forward = case.model.forward

    def slow_forward(*args, **kwargs):
        start = time.perf_counter()
        out = forward(*args, **kwargs)
        time.sleep(0.3 * (time.perf_counter() - start))  # 30% slower per forward pass
        return out

    monkeypatch.setattr(case.model, "forward", slow_forward)
"""


# A 30% slowdown is resolvable from five baseline runs only while their medians scatter
# little: the one-sided t test (4 degrees of freedom, p < 0.01) needs
# log(1.3) > 3.75 * s * sqrt(1 + 1/5), i.e. a log standard deviation s below about 0.064.
MAX_RESOLVABLE_NOISE = 0.05


def _recorded_noise(baseline_path: str) -> float:
    from infersuite.stats.compare import compute_run_noise

    with open(baseline_path) as handle:
        data = json.load(handle)
    (entry,) = data["benchmarks"].values()
    return compute_run_noise([run["median"] for run in entry["runs"]])


def _run_subprocess(pytester, *args):
    """A fresh process per run, as in CI: in-process runs accumulate state that slows
    later runs of a real model and would read as a regression."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--infer-device", "cpu",
                                         "--infer-report-dir", "rep", *args)


@pytest.mark.slow
def test_real_model_a_a_then_a_b(pytester):
    """The issue's pair on llama-tiny with the default 5% gate: the baseline is saved
    five times, so the gate knows its run-to-run scatter (docs/gate.md); the same code then
    raises no alarm and a model made 30% slower fails.

    Marked slow (about 45 s, four fresh processes) and left out of `make test`: on the
    2-core CI host a real model's median moved 17-51% between runs, so the pair skipped
    or false-alarmed in 3 of 5 tries there. The sleep-based pair above holds the gate in
    CI; run this one on a quiet machine with `pytest tests -m slow`."""
    pytester.makepyfile(test_real=REAL_FILE)
    args = ("--infer-model", "llama-tiny", "--infer-rounds", "60")
    base = str(pytester.path / "base.json")
    for _ in range(5):
        _run_subprocess(pytester, *args, "--infer-save-baseline", base).assert_outcomes(passed=1)
    noise = _recorded_noise(base)
    if noise > MAX_RESOLVABLE_NOISE:
        pytest.skip(f"this host is too noisy to resolve a 30% slowdown across runs: the five "
                    f"baseline runs' medians scatter by {noise:.1%} (log sd; > "
                    f"{MAX_RESOLVABLE_NOISE:.0%}); rerun on a quiet machine or use --infer-ab")
    same = _run_subprocess(pytester, *args, "--infer-baseline", base)
    assert same.ret in (0, EXIT_INCONCLUSIVE), same.stdout.str()
    pytester.makeconftest(SLOW_MODEL_CONFTEST)
    slow = _run_subprocess(pytester, *args, "--infer-baseline", base)
    assert slow.ret == EXIT_REGRESSION, slow.stdout.str()
    slow.stdout.fnmatch_lines(["*test_llama[[]llama-tiny-float32-cpu-hf[]]*e2e_s*regression*"])


RERUN_CONFTEST = """
import sys
import pytest

@pytest.fixture
def work_s():
    rerun = "--infer-rerun-of" in sys.argv
    {body}
"""


def _gate_rows(pytester):
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    return {row["name"]: row for row in report["gate"]["rows"]}


def _save_four(pytester):
    base = str(pytester.path / "baseline.json")
    for _ in range(4):
        _run(pytester, "--infer-save-baseline", base).assert_outcomes(passed=2)
    return base


def test_a_regression_is_measured_again_and_stands_when_it_repeats(bench_dir):
    base = _save_four(bench_dir)
    bench_dir.makeconftest(CONFTEST.format(factor=1.3))
    slow = _run(bench_dir, "--infer-baseline", base, "--benchmark-json", "bench.json")
    assert slow.ret == EXIT_REGRESSION, slow.stdout.str()
    slow.stdout.fnmatch_lines(
        ["*re-measured 1 of 1 benchmarks in * s: 1 of 1 regressions repeated*"])
    row = _gate_rows(bench_dir)["test_fast"]
    assert row["status"] == "regression"
    assert row["rerun"]["status"] == "regression"
    assert row["rerun"]["median_ratio"] > 1.15
    assert "repeated: measured again" in row["reason"]
    rerun = bench_dir.path / "rep" / "rerun"
    assert json.loads((rerun / "ids.json").read_text()) == [row["key"]]
    assert "1 passed" in (rerun / "pytest.log").read_text()
    # the child wrote its own report, not the parent's files
    assert json.loads((bench_dir.path / "bench.json").read_text())["benchmarks"][0]["name"]
    assert len(json.loads((bench_dir.path / "bench.json").read_text())["benchmarks"]) == 2


def test_a_regression_that_does_not_repeat_is_inconclusive_not_a_failure(bench_dir):
    """Planted transient slowdown: 30% slower in the first measurement only (a host's slow
    spell); measured again it is back, so the gate says inconclusive (11), not 10."""
    base = _save_four(bench_dir)
    bench_dir.makeconftest(RERUN_CONFTEST.format(body="return 0.002 * (1.0 if rerun else 1.3)"))
    flaky = _run(bench_dir, "--infer-baseline", base)
    assert flaky.ret == EXIT_INCONCLUSIVE, flaky.stdout.str()
    flaky.stdout.fnmatch_lines(["*: 0 of 1 regressions repeated*"])
    row = _gate_rows(bench_dir)["test_fast"]
    assert row["status"] == "inconclusive"
    assert row["rerun"]["status"] != "regression"
    assert row["reason"].startswith("inconclusive: not repeated in the same job")


def test_no_rerun_lets_the_first_measurement_decide(bench_dir):
    """Negative control of the above: the same transient slowdown, not re-measured."""
    base = _save_four(bench_dir)
    bench_dir.makeconftest(RERUN_CONFTEST.format(body="return 0.002 * (1.0 if rerun else 1.3)"))
    flaky = _run(bench_dir, "--infer-baseline", base, "--infer-no-rerun")
    assert flaky.ret == EXIT_REGRESSION, flaky.stdout.str()
    assert not (bench_dir.path / "rep" / "rerun").exists()


def test_a_rerun_that_fails_leaves_the_regression_standing_and_says_why(bench_dir):
    base = _save_four(bench_dir)
    bench_dir.makeconftest(RERUN_CONFTEST.format(
        body="assert not rerun, 'planted: the re-measurement fails'\n    return 0.0026"))
    slow = _run(bench_dir, "--infer-baseline", base)
    assert slow.ret == EXIT_REGRESSION, slow.stdout.str()
    slow.stdout.fnmatch_lines(["*re-measured 0 of 1 benchmarks in * s, exit 1 (its log: "
                               "*pytest.log): 0 of 1 regressions repeated, 1 not re-measured "
                               "(they stand)*"])
    assert "not re-measured: it was not measured again" in _gate_rows(bench_dir)[
        "test_fast"]["reason"]
