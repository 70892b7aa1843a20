"""Unit tests of the comparison and KV-cache arithmetic."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import (
    ConformanceError,
    check_close,
    check_same_tokens,
    compute_comparison,
)
from infersuite.conformance.kv_cache import compute_kv_cache_bytes, describe_cache_layers
from infersuite.conformance.tolerances import Tolerance, resolve_tolerance


def test_comparison_uses_atol_plus_rtol():
    tol = Tolerance(1e-5, 1e-5)
    expected = torch.tensor([0.0, 10.0])
    assert compute_comparison(torch.tensor([9e-6, 10.0 + 1.05e-4], dtype=torch.float64),
                              expected.double(), tol).ok
    result = compute_comparison(torch.tensor([0.0, 10.0 + 1.2e-4], dtype=torch.float64),
                                expected.double(), tol)
    assert not result.ok
    assert result.worst_index == (1,)
    assert result.max_abs_diff == pytest.approx(1.2e-4, rel=1e-3)


def test_bfloat16_bound_scales_with_magnitude():
    tol = resolve_tolerance("bfloat16")
    expected = torch.tensor([100.0, 0.0])
    # 3e-2 * max|x| = 3.0 absolute, plus rtol.
    assert compute_comparison(torch.tensor([100.0, 2.9]), expected, tol).ok
    assert not compute_comparison(torch.tensor([100.0, 3.1]), expected, tol).ok


def test_non_finite_values_fail():
    result = compute_comparison(torch.tensor([float("nan")]), torch.tensor([1.0]),
                                Tolerance(1.0, 1.0))
    assert not result.ok


def test_tolerance_override():
    assert resolve_tolerance("float32", {"float32": 1e-3}).atol == 1e-3
    assert resolve_tolerance("float16").atol == 5e-3


def test_check_close_message_names_axes():
    actual = torch.zeros(1, 2, 3)
    actual[0, 1, 2] = 1.0
    with pytest.raises(ConformanceError, match=r"at row=0, step=1, vocab=2: got 1, expected 0"):
        check_close(actual, torch.zeros(1, 2, 3), Tolerance(1e-5, 1e-5), "x", {},
                    axes=("row", "step", "vocab"))


def test_token_mismatch_reports_row_and_step():
    with pytest.raises(ConformanceError, match=r"row=1, step=2: got 9, expected 5"):
        check_same_tokens(torch.tensor([[1, 2, 3], [4, 4, 9]]),
                          torch.tensor([[1, 2, 3], [4, 4, 5]]), "tokens", {"model": "m"})


def test_near_tie_divergence_is_forgiven_and_real_one_is_not():
    logits = torch.zeros(1, 1, 10)
    logits[0, 0, 5] = 1.0
    logits[0, 0, 9] = 1.0 - 1e-6
    check_same_tokens(torch.tensor([[9]]), torch.tensor([[5]]), "t", {}, logits, tie_margin=1e-5)
    logits[0, 0, 9] = 0.5
    with pytest.raises(ConformanceError, match=r"margin 5\.000e-01"):
        check_same_tokens(torch.tensor([[9]]), torch.tensor([[5]]), "t", {}, logits,
                          tie_margin=1e-5)


class _Config:
    num_hidden_layers = 4
    num_attention_heads = 8
    num_key_value_heads = 2
    hidden_size = 256
    head_dim = None
    sliding_window = 8
    layer_types = ["sliding_attention"] * 3 + ["full_attention"]


def test_kv_cache_formula_is_gqa_and_window_aware():
    layers = describe_cache_layers(_Config(), batch=3, tokens=20)
    assert [layer.shape for layer in layers] == [(3, 2, 7, 32)] * 3 + [(3, 2, 20, 32)]
    # 2 x (3 sliding layers x 7 tokens + 1 full layer x 20) x batch 3 x kv 2 x dim 32 x 2 bytes
    assert compute_kv_cache_bytes(layers, 2) == 2 * (3 * 7 + 20) * 3 * 2 * 32 * 2
