"""Compare logits and token sequences; a mismatch says where and by how much."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infersuite.conformance.tolerances import Tolerance

if TYPE_CHECKING:
    import torch


class ConformanceError(AssertionError):
    """A conformance check failed; the message locates the failure."""


@dataclass(frozen=True)
class Comparison:
    ok: bool
    max_abs_diff: float
    bound: float  # the absolute bound at the worst element
    worst_index: tuple[int, ...]
    actual_value: float
    expected_value: float
    n_elements: int
    n_violations: int


def compute_comparison(actual: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> Comparison:
    """Elementwise |a-e| <= max(atol, frac*max|e|) + rtol*|e|, in float64."""
    import torch

    if actual.shape != expected.shape:
        raise ConformanceError(f"shape mismatch: got {tuple(actual.shape)}, "
                               f"expected {tuple(expected.shape)}")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if a.numel() == 0:
        return Comparison(True, 0.0, tol.atol, (), 0.0, 0.0, 0, 0)
    nonfinite = ~torch.isfinite(a) & torch.isfinite(e)
    diff = (a - e).abs().masked_fill(nonfinite, float("inf"))
    atol = tol.bound_for(float(e.abs().max()))
    allowed = atol + tol.rtol * e.abs()
    excess = diff - allowed
    flat = int(torch.argmax(excess).item())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
    max_diff = float(diff.max())
    return Comparison(
        ok=bool((excess <= 0).all()),
        max_abs_diff=max_diff,
        bound=float(allowed.reshape(-1)[flat]),
        worst_index=index,
        actual_value=float(a.reshape(-1)[flat]),
        expected_value=float(e.reshape(-1)[flat]),
        n_elements=a.numel(),
        n_violations=int((excess > 0).sum()),
    )


def render_context(context: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in context.items())


def check_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    tol: Tolerance,
    what: str,
    context: Mapping[str, Any],
    axes: tuple[str, ...] = (),
) -> Comparison:
    """Raise ConformanceError naming the worst element unless within tolerance.

    `axes` names the tensor's dimensions (e.g. ("row", "position", "vocab")) so
    the message reads "row=1, position=7" rather than a bare index.
    """
    result = compute_comparison(actual, expected, tol)
    if not result.ok:
        names = axes if len(axes) == len(result.worst_index) else tuple(
            f"dim{i}" for i in range(len(result.worst_index)))
        where = ", ".join(f"{n}={i}" for n, i in zip(names, result.worst_index, strict=True))
        raise ConformanceError(
            f"{what}: max abs diff {result.max_abs_diff:.3e} exceeds tolerance "
            f"({tol.describe()}; bound {result.bound:.3e} there) at {where}: "
            f"got {result.actual_value:.6g}, expected {result.expected_value:.6g}; "
            f"{result.n_violations}/{result.n_elements} elements out of tolerance "
            f"[{render_context(context)}]"
        )
    return result


def check_same_tokens(
    actual: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    context: Mapping[str, Any],
    reference_logits: torch.Tensor | None = None,
    tie_margin: float = 0.0,
) -> None:
    """Greedy tokens must match. rows x steps tensors.

    A divergence is forgiven only where the reference's two candidate tokens are
    within `tie_margin` logits of each other (a near-tie that reduced precision
    may legitimately flip); comparison of that row stops there.
    """
    if actual.shape != expected.shape:
        raise ConformanceError(f"{what}: got {tuple(actual.shape)} tokens, expected "
                               f"{tuple(expected.shape)} [{render_context(context)}]")
    for row in range(expected.shape[0]):
        mismatch = (actual[row].cpu() != expected[row].cpu()).nonzero()
        if mismatch.numel() == 0:
            continue
        step = int(mismatch[0, 0])
        got, want = int(actual[row, step]), int(expected[row, step])
        if reference_logits is not None:
            step_logits = reference_logits[row, step].double()
            margin = float(step_logits[want] - step_logits[got])
            if margin <= tie_margin:
                continue
            detail = f"; reference logit margin {margin:.3e} > tie margin {tie_margin:.1e}"
        else:
            detail = ""
        raise ConformanceError(
            f"{what}: tokens differ at row={row}, step={step}: got {got}, expected {want}"
            f"{detail}; expected row {expected[row].tolist()}, got {actual[row].tolist()} "
            f"[{render_context(context)}]"
        )


def first_divergence(actual: torch.Tensor, expected: torch.Tensor) -> list[int]:
    """Per row, the first step where the tokens differ (the length when none)."""
    steps = []
    for row in range(expected.shape[0]):
        mismatch = (actual[row].cpu() != expected[row].cpu()).nonzero()
        steps.append(int(mismatch[0, 0]) if mismatch.numel() else expected.shape[1])
    return steps


def check_greedy_runs(
    actual: tuple[torch.Tensor, torch.Tensor],
    expected: tuple[torch.Tensor, torch.Tensor],
    tol: Tolerance,
    what: str,
    context: Mapping[str, Any],
) -> list[Comparison]:
    """Two greedy runs, each (tokens [B, S], step logits [B, S, V]), agree; returns each
    row's logits comparison.

    Logits are compared at every step up to and including each row's first token
    divergence (after it the two runs continue different sequences, so later
    logits are not comparable). A divergence passes only at a near-tie
    (``Tolerance.tie_margin``).
    """
    actual_tokens, actual_logits = actual
    expected_tokens, expected_logits = expected
    results = []
    for row, stop in enumerate(first_divergence(actual_tokens, expected_tokens)):
        last = min(stop + 1, expected_tokens.shape[1])
        results.append(check_close(actual_logits[row, :last], expected_logits[row, :last], tol,
                                   f"{what}: step logits", {**context, "row": row},
                                   axes=("step", "vocab")))
    tie_margin = tol.tie_margin(float(expected_logits.detach().abs().max()))
    check_same_tokens(actual_tokens, expected_tokens, f"{what}: greedy tokens", context,
                      expected_logits, tie_margin=tie_margin)
    return results
