"""Roofline arithmetic against hand-computed numbers."""

from __future__ import annotations

import pytest

from infersuite.stats.roofline import (
    compute_copy_bytes,
    compute_decode_bytes,
    compute_gemm_flops,
    compute_mbu,
    compute_mfu,
    compute_prefill_flops,
    compute_rate,
)


def test_gemm_and_copy_counts():
    assert compute_gemm_flops(8192, 8192, 8192) == 2 * 8192**3
    assert compute_copy_bytes(1 << 28, 4) == 2 << 30  # 1 GiB read + 1 GiB written


def test_h100_reference_rates():
    # 8192^3 bf16 GEMM in 1.375 ms is ~800 TFLOP/s (an H100-class rate; docs/knee.md)
    assert compute_rate(compute_gemm_flops(8192, 8192, 8192), 1.375e-3) == pytest.approx(
        7.996e14, rel=1e-3)


def test_mbu_known_numbers():
    # 1 GB of weights + 0.5 GB KV read in 1 ms on a 3 TB/s card: 1.5 TB/s / 3 TB/s = 50%
    moved = compute_decode_bytes(10**9, 5 * 10**8)
    assert moved == 1_500_000_000
    assert compute_mbu(moved, 1e-3, 3e12) == pytest.approx(0.5)


def test_prefill_flops_dense_head_and_causal_attention():
    # P=1e6, head 5e5 on 1 kept position, B=2, T=4, L=3, d_attn=8
    flops = compute_prefill_flops(10**6, 2, 4, 3, 8, head_params=500_000, head_positions=1)
    dense = 2 * 10**6 * 2 * 4
    head = 2 * 500_000 * 2
    attention = 2 * 3 * 2 * 4 * 5 * 8  # 2·L·B·T·(T+1)·d
    assert flops == dense + head + attention


def test_mfu_known_numbers():
    assert compute_mfu(4e14, 1.0, 8e14) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_rates_refuse_bad_times_and_peaks(bad):
    with pytest.raises(ValueError, match="time_s"):
        compute_rate(1.0, bad)
    with pytest.raises(ValueError, match="calibration"):
        compute_mbu(1.0, 1.0, bad)


def test_counts_refuse_non_positive_sizes():
    with pytest.raises(ValueError, match="m=0"):
        compute_gemm_flops(0, 1, 1)
    with pytest.raises(ValueError, match="prompt_tokens"):
        compute_prefill_flops(1, 1, 0, 1, 1)
