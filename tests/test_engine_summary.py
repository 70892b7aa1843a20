"""Two or more engines in one run: a side-by-side table with verdicts and agreement."""

from __future__ import annotations

import json


def test_engines_side_by_side(pytester, copy_suite_module):
    copy_suite_module("conformance/test_reference.py")
    copy_suite_module("conformance/test_determinism.py")
    out = pytester.path / "out"
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "--infer-engine", "hf", "--infer-engine", "hf:attention=eager",
                                "--infer-report-dir", str(out), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, skipped=2)
    result.stdout.fnmatch_lines(["*infersuite engines*",
                                 "llama-tiny-float32-cpu-hf *pass 2/2 (2 skipped)*reference*",
                                 "llama-tiny-float32-cpu-hf-attention=eager *pass 4/4*"])
    doc = json.loads((out / "engines.json").read_text())
    eager = doc["cases"]["llama-tiny-float32-cpu-hf-attention=eager"]
    assert eager["outcomes"] == {"passed": 4}
    assert 0.0 <= eager["max_abs_logprob_diff"] < 1e-4
    assert (out / "engines.md").read_text().startswith("# Engines side by side")


def test_one_engine_writes_no_table(pytester, copy_suite_module):
    copy_suite_module("conformance/test_determinism.py")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "infersuite engines" not in result.stdout.str()
