"""hf-compiled: transformers' static cache + torch.compile, judged like every engine.
Compiling takes about a minute on a 2-core CPU, so this is marked slow."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_compiled_static_cache_conforms(pytester, copy_suite_module):
    copy_suite_module("conformance/test_cache.py")
    copy_suite_module("conformance/test_reference.py")
    result = pytester.runpytest_subprocess(
        "--infer-model", "llama-tiny", "--infer-device", "cpu", "--infer-engine",
        "hf-compiled", "-p", "no:cacheprovider", "-rs", "-s")
    result.assert_outcomes(passed=3, skipped=2)
    result.stdout.fnmatch_lines(["*hf-compiled] greedy vs reference: identical*",
                                 "*engine hf-compiled lacks cache*"])


def test_bad_mode_is_an_engine_error(pytester):
    pytester.makepyfile(test_x="def test_x(infer_case):\n    infer_case.engine\n")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "--infer-engine", "hf-compiled:mode=fast")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mode='fast'; expected one of default, reduce-overhead, "
                                 "max-autotune*"])
