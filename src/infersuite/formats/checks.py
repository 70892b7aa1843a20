"""Format round-trip verdicts: tensors bit-exact, or within a per-element bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from infersuite.conformance.compare import ConformanceError, render_context

if TYPE_CHECKING:
    import torch


def _first_difference(actual: torch.Tensor, expected: torch.Tensor) -> str | None:
    """None when the bits are identical, else where and by how much they differ."""
    import torch

    a, e = actual.detach().cpu().contiguous(), expected.detach().cpu().contiguous()
    # Compare bit patterns (same dtype here) so NaN payloads and -0.0 count too.
    a_bits = a.view(torch.uint8).reshape(a.numel(), -1)
    e_bits = e.view(torch.uint8).reshape(e.numel(), -1)
    flat = (a_bits != e_bits).any(-1)
    n_diff = int(flat.sum())
    if n_diff == 0:
        return None
    first = int(flat.nonzero()[0, 0])
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), a.shape))
    diff = (a.double() - e.double()).abs()
    return (f"{n_diff}/{a.numel()} elements differ, first at index {index}: got "
            f"{float(a.reshape(-1)[first]):.9g}, expected {float(e.reshape(-1)[first]):.9g}; "
            f"max abs diff {float(diff.max()):.3e}")


def check_tensors_bit_exact(
    actual: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    what: str,
    context: Mapping[str, Any],
) -> int:
    """Every expected tensor present with the same name, dtype, shape and bits.

    Returns the number of tensors compared.
    """
    where = render_context(context)
    missing = sorted(set(expected) - set(actual))
    if missing:
        raise ConformanceError(f"{what}: {len(missing)} tensors missing after the round trip, "
                               f"e.g. {missing[0]!r} [{where}]")
    for name, want in expected.items():
        got = actual[name]
        if got.dtype != want.dtype or got.shape != want.shape:
            raise ConformanceError(
                f"{what}: tensor {name!r}: got {got.dtype} {tuple(got.shape)}, expected "
                f"{want.dtype} {tuple(want.shape)} (tolerance: bit-exact) [{where}]")
        difference = _first_difference(got, want)
        if difference is not None:
            raise ConformanceError(f"{what}: tensor {name!r}: {difference} "
                                   f"(tolerance: bit-exact) [{where}]")
    return len(expected)


def check_within_bound(
    actual: torch.Tensor,
    expected: torch.Tensor,
    bound: torch.Tensor,
    what: str,
    context: Mapping[str, Any],
) -> float:
    """|actual - expected| <= bound elementwise (float64); returns the max abs error."""
    import torch

    a, e, b = (t.detach().cpu().double() for t in (actual, expected, bound))
    err = (a - e).abs()
    excess = err - b
    if not bool((excess <= 0).all()):
        flat = int(torch.argmax(excess))
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
        raise ConformanceError(
            f"{what}: max abs error {float(err.max()):.3e}; at index {index} error "
            f"{float(err.reshape(-1)[flat]):.3e} exceeds its bound "
            f"{float(b.reshape(-1)[flat]):.3e} (got {float(a.reshape(-1)[flat]):.6g}, expected "
            f"{float(e.reshape(-1)[flat]):.6g}); {int((excess > 0).sum())}/{a.numel()} "
            f"elements out of bound [{render_context(context)}]")
    return float(err.max()) if err.numel() else 0.0
