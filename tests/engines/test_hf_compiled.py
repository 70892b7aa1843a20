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
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(["*hf-compiled] greedy vs reference: identical*",
                                 "*engine hf-compiled lacks cache*",
                                 "*engine hf-compiled lacks logits*only generate()'s decode "
                                 "steps are compiled*"])


def test_an_eager_generate_is_refused(pytester, copy_suite_module):
    """If transformers ignores the compile config, the engine fails instead of passing
    the eager path off as compiled."""
    pytester.makeconftest(
        "import transformers.generation.utils as gu\n"
        "gu.GenerationMixin._valid_auto_compile_criteria = lambda *a, **k: False\n")
    copy_suite_module("conformance/test_cache.py")
    result = pytester.runpytest_subprocess(
        "--infer-model", "llama-tiny", "--infer-device", "cpu", "--infer-engine",
        "hf-compiled", "-p", "no:cacheprovider", "-k", "equivalence")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*compiled no graph*the run would time the eager path*"])


def test_bad_mode_is_an_engine_error(pytester):
    pytester.makepyfile(test_x="def test_x(infer_case):\n    infer_case.engine\n")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "--infer-engine", "hf-compiled:mode=fast")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mode='fast'; expected one of default, reduce-overhead, "
                                 "max-autotune*"])
