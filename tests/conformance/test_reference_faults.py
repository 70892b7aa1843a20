"""A bug that a stack's cached and naive paths share passes the internal checks; the
reference (transformers float32 on the CPU) catches it."""

from __future__ import annotations

import pytest

# The bfloat16 model's rotary frequencies are 1.5x too high (a wrong rope base): every path of
# that model shares the bug, the float32 reference does not.
WRONG_ROPE_BASE = """
import torch
import infersuite.models.loader as loader

_original = loader.load_model

def _with_wrong_rope(name, dtype, device, *args, **kwargs):
    loaded = _original(name, dtype, device, *args, **kwargs)
    if dtype == torch.bfloat16:
        rotary = loaded.model.model.rotary_emb
        rotary.inv_freq = rotary.inv_freq * 1.5
    return loaded

def pytest_configure(config):
    loader.load_model = _with_wrong_rope

def pytest_unconfigure(config):
    loader.load_model = _original
"""


def _run(pytester: pytest.Pytester, copy_suite_module) -> pytest.RunResult:
    copy_suite_module("conformance/test_cache.py")
    copy_suite_module("conformance/test_reference.py")
    return pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "--infer-dtype", "float32", "--infer-dtype", "bfloat16",
                              "-p", "no:cacheprovider", "-rf")


def test_wrong_rope_base_passes_internal_checks_and_fails_the_reference(
        pytester, copy_suite_module):
    pytester.makeconftest(WRONG_ROPE_BASE)
    result = _run(pytester, copy_suite_module)
    failed = sorted(line.split("::")[1].split(" ")[0] for line in result.outlines
                    if line.startswith("FAILED "))
    assert failed == [
        "test_greedy_agrees_with_reference[llama-tiny-bfloat16-cpu-hf]",
        "test_logprobs_agree_with_reference[llama-tiny-bfloat16-cpu-hf]",
    ], failed
    result.stdout.fnmatch_lines(["*engine vs reference logprobs: |Δ logprob| * exceeds the "
                                 "bfloat16 bound * at prompt=*, position=*, token=*"])


def test_healthy_bfloat16_agrees_with_the_reference(pytester, copy_suite_module):
    result = _run(pytester, copy_suite_module)
    result.assert_outcomes(passed=8, skipped=2)  # the reference does not judge itself
