"""llama.cpp's own sampler under the decoding checks: a sampler that ignores top-p, top-k
or the temperature fails them for llama.cpp, and the real chain passes."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

# In-process (isolate=off) so the conftest's patch reaches the engine.
IGNORES = {
    "top_p": """
        orig = LlamaCppEngine.sample
        def patched(self, *args, top_p=None, **kwargs):
            return orig(self, *args, top_p=None, **kwargs)
        patch(LlamaCppEngine, "sample", patched)
    """,
    "temperature": """
        orig = LlamaCppEngine.sample
        def patched(self, *args, temperature=1.0, **kwargs):
            return orig(self, *args, temperature=1.0, **kwargs)
        patch(LlamaCppEngine, "sample", patched)
    """,
    "top_k": """
        orig = LlamaCppEngine.sample
        def patched(self, *args, top_k=None, **kwargs):
            return orig(self, *args, top_k=None, **kwargs)
        patch(LlamaCppEngine, "sample", patched)
    """,
}
IMPORTS = "from infersuite.engines.llamacpp_engine import LlamaCppEngine"


def _run(pytester, copy_suite_module, name: str) -> pytest.RunResult:
    copy_suite_module("conformance/test_decoding.py")
    return pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "--infer-engine", "llama.cpp:isolate=off", "-p",
                              "no:cacheprovider", "-k", name, "-rf")


@pytest.mark.parametrize(("fault", "test", "message"), [
    ("top_p", "top_p", "*top-p sampling*drew * token ids outside*"),
    ("top_k", "top_k", "*top-k sampling*drew * token ids outside*"),
    ("temperature", "chi_square and 0.5", "*do not follow softmax(logits/T) at T=0.5*"),
])
def test_an_ignored_setting_fails_for_llama_cpp(fault, test, message, pytester,
                                               copy_suite_module, patching_conftest):
    pytester.makeconftest(patching_conftest(IMPORTS, IGNORES[fault]))
    result = _run(pytester, copy_suite_module, test)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_the_real_sampler_chain_passes(pytester, copy_suite_module):
    result = _run(pytester, copy_suite_module, "top_p or top_k or seeded or chi_square or "
                                               "low_temperature or argmax")
    result.assert_outcomes(passed=7)
