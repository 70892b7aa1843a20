"""Per-element error bounds of GGUF block quantization, derived from gguf-py's quantizers.

Q8_0 (gguf.quants.Q8_0, bit-exact with ggml-quants.c): per block of 32, d = max|x|/127,
q = round(x/d) in [-127, 127], d stored as float16 (d16). Then
|x - q·d16| <= |x - q·d| + |q|·|d - d16| <= d/2 + 127·|d - d16|, and float16 rounding
gives |d - d16| <= 2^-11·|d| (normal range) or 2^-25 (subnormal half-step). Bound:
d·(1/2 + 127·2^-11) + 127·2^-25.

Q4_0 (gguf.quants.Q4_0): d = m/-8 with m the block's element of largest |x| (signed),
q = clip(trunc(x/d + 8.5), 0, 15) - 8, i.e. round-half-up of x/d clipped to [-8, 7].
m maps to -8 exactly; an element with x/d > 7.5 (only possible opposite in sign to m)
is clipped to 7, an error up to |d|; every other element is within |d|/2. With the
float16 scale: half-step elements |d|·(1/2 + 8·2^-11) + 8·2^-25, clipped ones
|d|·(1 + 8·2^-11) + 8·2^-25.

The bounds use the scale computed from the SOURCE block, so a quantizer that writes a
wrong scale fails them rather than widening them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

BLOCK = 32
F16_REL = 2.0**-11  # float16 unit roundoff (10-bit mantissa)
F16_SUBNORMAL_HALF_STEP = 2.0**-25


def _blocks(source: np.ndarray) -> np.ndarray:
    import numpy as np

    flat = np.asarray(source, dtype=np.float64).reshape(-1, BLOCK)
    return flat


def compute_q8_0_bound(source: np.ndarray) -> np.ndarray:
    import numpy as np

    blocks = _blocks(source)
    d = np.abs(blocks).max(axis=1, keepdims=True) / 127.0
    bound = d * (0.5 + 127 * F16_REL) + 127 * F16_SUBNORMAL_HALF_STEP
    return np.broadcast_to(bound, blocks.shape).reshape(source.shape)


def compute_q4_0_bound(source: np.ndarray) -> np.ndarray:
    import numpy as np

    blocks = _blocks(source)
    index = np.abs(blocks).argmax(axis=1)[:, None]
    d = np.take_along_axis(blocks, index, axis=1) / -8.0
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(d == 0, 0.0, blocks / d)
    steps = np.where(scaled > 7.5, 1.0, 0.5)
    bound = np.abs(d) * (steps + 8 * F16_REL) + 8 * F16_SUBNORMAL_HALF_STEP
    return bound.reshape(source.shape)


def compute_quant_bound(source: np.ndarray, qtype: Any) -> np.ndarray:
    """The per-element |dequantize(quantize(x)) - x| bound for Q8_0 / Q4_0."""
    if qtype.name == "Q8_0":
        return compute_q8_0_bound(source)
    if qtype.name == "Q4_0":
        return compute_q4_0_bound(source)
    raise ValueError(f"no error bound for {qtype.name} (supported: Q8_0, Q4_0)")


def find_requantize_mismatch(stored: np.ndarray, qtype: Any) -> int | None:
    """First block where quantize(dequantize(q)) != q, or None (idempotent).

    Both formats start a block with its float16 scale. An all-zero block (e.g. an
    embedding's padding row) stores d = -0.0 or +0.0 depending on the sign of its
    "max" element; the two decode identically, so a zero scale is compared by value.
    """
    import gguf
    import numpy as np

    block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
    original = np.asarray(stored).reshape(-1, block_bytes)
    again = gguf.quants.quantize(gguf.quants.dequantize(original, qtype), qtype)
    again = np.asarray(again).reshape(-1, block_bytes)
    scale_zero = (original[:, :2].view(np.float16) == 0) & (again[:, :2].view(np.float16) == 0)
    differs = (original[:, 2:] != again[:, 2:]).any(1) | (
        (original[:, :2] != again[:, :2]).any(1) & ~scale_zero[:, 0])
    bad = np.flatnonzero(differs)
    return int(bad[0]) if bad.size else None
