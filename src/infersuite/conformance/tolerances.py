"""Per-dtype tolerances (docs/tolerances.md), with user overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    # bf16 only: the bound is at least this fraction of max|expected|, because
    # bf16's 8-bit mantissa makes error scale with the tensor's magnitude.
    scale_fraction: float = 0.0

    def bound_for(self, max_abs_expected: float) -> float:
        return max(self.atol, self.scale_fraction * max_abs_expected)

    def tie_margin(self, max_abs_logit: float) -> float:
        """The near-tie rule, one definition for every greedy and top-p check: two
        candidates whose logits differ by at most this may legitimately swap, since each
        may move by the bound this tolerance allows on a logit of that magnitude (the
        dtype-scale term included: bf16 rounding grows with the logits)."""
        return 2 * (self.bound_for(max_abs_logit) + self.rtol * max_abs_logit)

    def describe(self) -> str:
        text = f"atol={self.atol:g}, rtol={self.rtol:g}"
        if self.scale_fraction:
            text += f", >= {self.scale_fraction:g}*max|x|"
        return text


# Batched vs solo, padded vs unpadded, cached vs recompute (docs/tolerances.md).
LOGITS_TOLERANCES: Mapping[str, Tolerance] = {
    "float32": Tolerance(1e-5, 1e-5),
    "float16": Tolerance(5e-3, 5e-3),
    "bfloat16": Tolerance(1e-2, 1e-2, scale_fraction=3e-2),
}


def resolve_tolerance(dtype: str, overrides: Mapping[str, float] | None = None) -> Tolerance:
    base = LOGITS_TOLERANCES[dtype]
    if overrides and dtype in overrides:
        value = overrides[dtype]
        return Tolerance(value, value, base.scale_fraction)
    return base
