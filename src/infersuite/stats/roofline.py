"""Roofline arithmetic: FLOP and byte counts, and MBU/MFU against a measured calibration.

Pure functions, no I/O. Decode is memory-bound, so its efficiency is the model bandwidth
utilization (MBU); prefill is compute-bound, so its efficiency is the model FLOP/s
utilization (MFU). Both are against figures *measured* in the same run (docs/knee.md),
not a datasheet.
"""

from __future__ import annotations

import math


def compute_gemm_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m x k) @ (k x n) matmul: 2·m·n·k (one multiply and one add per MAC)."""
    _check_positive(m=m, n=n, k=k)
    return 2 * m * n * k


def compute_copy_bytes(numel: int, bytes_per_element: int) -> int:
    """Bytes moved by ``dst.copy_(src)``: 2·numel·bytes (every element read once, written once)."""
    _check_positive(numel=numel, bytes_per_element=bytes_per_element)
    return 2 * numel * bytes_per_element


def compute_rate(amount: float, time_s: float) -> float:
    """amount / time_s (FLOP/s from FLOPs, bytes/s from bytes)."""
    if not (math.isfinite(time_s) and time_s > 0.0):
        raise ValueError(f"time_s={time_s!r}: must be a finite duration > 0 seconds")
    return amount / time_s


def compute_decode_bytes(weight_bytes: int, kv_cache_bytes: int) -> int:
    """Bytes one decode step must read: weight_bytes + kv_cache_bytes.

    Every weight is read once per step whatever the batch size (the batch shares them), and
    the whole KV cache of every sequence is read once. Activations are ignored (tiny next to
    both at decode). ``weight_bytes`` should leave out the input embedding table (only B rows
    of it are gathered) unless it is tied to the output head.
    """
    if weight_bytes < 0 or kv_cache_bytes < 0:
        raise ValueError(
            f"weight_bytes={weight_bytes}, kv_cache_bytes={kv_cache_bytes}: must be >= 0"
        )
    return weight_bytes + kv_cache_bytes


def compute_prefill_flops(
    linear_params: int,
    batch: int,
    prompt_tokens: int,
    n_layers: int,
    attention_dim: int,
    head_params: int = 0,
    head_positions: int = 1,
) -> int:
    """FLOPs of a causal prefill of ``batch`` prompts of ``prompt_tokens`` tokens.

    FLOPs = 2·P·B·T                      (every token through every linear layer but the head)
          + 2·P_head·B·H                 (the output head on the H positions whose logits are kept)
          + 2·L·B·T·(T+1)·d_attn         (attention: QKᵀ and A·V, causal)

    where P = ``linear_params``, P_head = ``head_params``, H = ``head_positions`` (1 when
    the model is called with ``logits_to_keep=1``, as generation does), L = ``n_layers``,
    d_attn = heads x head_dim (``attention_dim``). The attention term: query i scores i+1
    keys (2·(i+1)·d_attn FLOPs) and mixes i+1 values (the same again); summing over
    i = 0..T-1 gives 2·T·(T+1)·d_attn per layer and sequence.
    """
    _check_positive(batch=batch, prompt_tokens=prompt_tokens)
    if min(linear_params, n_layers, attention_dim, head_params, head_positions) < 0:
        raise ValueError("parameter and layer counts must be >= 0")
    dense = 2 * linear_params * batch * prompt_tokens
    head = 2 * head_params * batch * head_positions
    attention = 2 * n_layers * batch * prompt_tokens * (prompt_tokens + 1) * attention_dim
    return dense + head + attention


def compute_mbu(bytes_per_step: float, step_s: float, bandwidth_bytes_per_s: float) -> float:
    """MBU = (bytes read per decode step / step time) / measured bandwidth, in [0, ~1]."""
    _check_peak(bandwidth_bytes_per_s, "bandwidth_bytes_per_s")
    return compute_rate(bytes_per_step, step_s) / bandwidth_bytes_per_s


def compute_mfu(flops: float, time_s: float, peak_flops_per_s: float) -> float:
    """MFU = (FLOPs / time) / measured FLOP/s, in [0, ~1]."""
    _check_peak(peak_flops_per_s, "peak_flops_per_s")
    return compute_rate(flops, time_s) / peak_flops_per_s


def _check_peak(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name}={value!r}: must be a measured rate > 0; run the calibration")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name}={value!r}: must be a positive integer")
