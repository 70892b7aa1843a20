"""Known findings run as strict expected failures: listed every run, a fix is an XPASS."""

from __future__ import annotations

import json

import pytest

CHECKS = """
import pytest
from infersuite.conformance.compare import ConformanceError

pytestmark = pytest.mark.infer_cases(load=False)

def test_known_bad(infer_case):
    raise ConformanceError("max abs diff 1.0e-01 exceeds tolerance [planted]")

def test_fixed_upstream(infer_case):
    pass

def test_crashes(infer_case):
    raise RuntimeError("engine crashed")
"""


def _expectations(tmp_path, *tests: str) -> str:
    path = tmp_path / "hf.json"
    path.write_text(json.dumps({
        "schema": "infersuite.expectations/1", "engine": "hf",
        "expectations": [{"test": t, "case": "llama-tiny-*-cpu-hf",
                          "when": {"packages": {"torch": ">=2"}, "device": "cpu"},
                          "reason": "planted for the test.", "evidence": "max abs diff 0.1"}
                         for t in tests]}))
    return str(path)


def _run(pytester, *tests: str) -> pytest.RunResult:
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "--infer-expectations", _expectations(pytester.path, *tests),
                              "-p", "no:cacheprovider", "-rxX")


def test_a_known_failure_is_an_expected_failure_and_listed(pytester):
    result = _run(pytester, "test_known_bad")
    result.assert_outcomes(xfailed=1, passed=1, failed=1)  # the crash still fails
    result.stdout.fnmatch_lines(["*infersuite known findings*",
                                 "xfailed: test_checks.py::test_known_bad*",
                                 "*known finding (hf; torch>=2): planted for the test.*"])


def test_a_fixed_finding_fails_as_xpass_strict(pytester):
    result = _run(pytester, "test_fixed_upstream")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*XPASS(strict)*test_fixed_upstream*"])


def test_an_expectation_does_not_hide_another_error(pytester):
    result = _run(pytester, "test_crashes")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: engine crashed*"])


def test_a_corrupt_expectations_file_is_a_usage_error(pytester):
    bad = pytester.path / "bad.json"
    bad.write_text('{"schema": "infersuite.expectations/1", "engine": "hf", "expec')
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest("--infer-expectations", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*expectations {bad}: not valid JSON*"])
