"""Under pytest-xdist the workers measure and the controller alone writes the reports."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xdist")

RECORDING_TESTS = """
from types import SimpleNamespace as NS

import pytest

from infersuite.conformance.wer import score_transcripts

@pytest.mark.parametrize("n", range(4))
def test_records(n, infer_perf, format_report, asr_wer):
    infer_perf.record({"e2e_s": [0.01 * (n + 1)] * 5}, primary="e2e_s")
    format_report.add("fake", f"model-{n}", "fp32", max_abs_diff=0.0)
    wer = score_transcripts(["1 2"], ["1 2"])
    asr_wer(NS(id=f"case-{n}", spec=NS(engine="hf")), NS(precision="float32"), wer, wer)
"""

# Logs every report write with the writing process's xdist role.
WRITE_LOG = """
import os
from infersuite import atomic

_original = atomic.write_bytes_atomic

def _logged(path, data):
    role = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    with open(os.path.join(os.path.dirname(__file__), "writes.log"), "a") as log:
        log.write(f"{role} {os.path.basename(path)}\\n")
    _original(path, data)

atomic.write_bytes_atomic = _logged
"""


def test_workers_measure_and_the_controller_writes(pytester):
    pytester.makepyfile(test_recording=RECORDING_TESTS)
    pytester.makeconftest(WRITE_LOG)
    report_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider",
                                           "--infer-report-dir", str(report_dir))
    result.assert_outcomes(passed=4)
    writers = (pytester.path / "writes.log").read_text().split()
    assert set(writers[0::2]) == {"controller"}, writers
    report = json.loads((report_dir / "report.json").read_text())
    assert len(report["benchmarks"]) == 4, "the controller lost a worker's records"
    rows = json.loads((report_dir / "formats.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == [f"model-{n}" for n in range(4)]
    wer = json.loads((report_dir / "wer.json").read_text())["rows"]
    assert sorted(r["case"] for r in wer) == [f"case-{n}" for n in range(4)]


def test_baselines_with_xdist_are_a_usage_error(pytester):
    pytester.makepyfile(test_recording=RECORDING_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--infer-save-baseline", "b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-benchmark does not time benchmarks under xdist*"])


ENGINE_CASES = """
import pytest
from infersuite.conformance.compare import ConformanceError

pytestmark = pytest.mark.infer_cases(load=False)

def test_known_bad(infer_case):
    raise ConformanceError("max abs diff 1.0e-01 exceeds tolerance [planted]")

@pytest.mark.parametrize("n", range(3))
def test_ok(infer_case, n):
    pass
"""


def test_engine_table_and_known_findings_come_from_the_controller(pytester):
    pytester.makepyfile(test_cases=ENGINE_CASES)
    expectations = pytester.path / "hf.json"
    expectations.write_text(json.dumps({
        "schema": "infersuite.expectations/1", "engine": "hf",
        "expectations": [{"test": "test_known_bad", "case": "llama-tiny-float32-cpu-hf",
                          "reason": "planted.", "evidence": "0.1"}]}))
    report_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--infer-model", "llama-tiny",
        "--infer-device", "cpu", "--infer-engine", "hf", "--infer-engine",
        "hf:attention=eager", "--infer-expectations", str(expectations),
        "--infer-report-dir", str(report_dir))
    result.assert_outcomes(passed=6, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*infersuite known findings*",
                                 "xfailed: test_cases.py::test_known_bad*"])
    doc = json.loads((report_dir / "engines.json").read_text())
    assert doc["cases"]["llama-tiny-float32-cpu-hf"]["outcomes"] == {"passed": 3,
                                                                     "xfailed": 1}
    assert doc["cases"]["llama-tiny-float32-cpu-hf-attention=eager"]["outcomes"] == {
        "passed": 3, "failed": 1}
